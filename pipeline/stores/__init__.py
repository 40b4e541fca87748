"""Where spans and frames are stored: TimescaleDB hypertables and an S3 object store."""
