"""`make demo`: import real runs, record a real browser run, print a per-run summary."""
