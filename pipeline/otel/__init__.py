"""OTLP traces from any OpenTelemetry-instrumented agent into Spanline span batches.

`convert` is the entry point (decode, map, encode); `mapping` holds the attribute rules,
`kafka_agent` consumes the Collector's Kafka topic and `receiver` serves OTLP/HTTP.
"""
