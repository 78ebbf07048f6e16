"""Domain logic of the ESS portal: no Flask, no Dash (see docs/ARCHITECTURE.md)."""
