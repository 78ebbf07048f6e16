"""Site databases: engines, the dialect-specific pieces, the site store (tables, reads,
the one write path) and the per-minute rollups."""
