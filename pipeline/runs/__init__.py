"""Live run metrics: per-run state folded from span batches, kept in faust tables."""
