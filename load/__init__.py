"""Load harness: realistic span traffic through the live pipeline, measured end to end."""
