"""The local stack: Apache Kafka, TimescaleDB and an S3 server on 127.0.0.1 for development and tests."""
