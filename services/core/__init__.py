"""What every domain shares: settings, typed errors, the site registry, the field
catalogue, the app database's metadata, the portal context, UI texts, access decisions and
readiness."""
