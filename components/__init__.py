"""Pure layout and figure builders: they never query and never read globals."""
