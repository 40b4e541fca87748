"""Usage normalisation per source and span pricing."""
