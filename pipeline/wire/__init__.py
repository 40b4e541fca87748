"""Avro single-object framing and the span-batch and frame codecs used on every Kafka topic."""

from pipeline.wire.framing import (
    MAGIC,
    REASONS,
    SCHEMAS_DIR,
    SchemaRegistry,
    WireError,
    default_registry,
)
from pipeline.wire.frames import FRAME_SCHEMA_NAME, Frame, decode_frame, encode_frame
from pipeline.wire.spans import (
    SPAN_BATCH_SCHEMA_NAME,
    SPAN_FIELDS,
    SpanBatch,
    decode_span_batch,
    encode_span_batch,
)

__all__ = [
    "FRAME_SCHEMA_NAME",
    "MAGIC",
    "REASONS",
    "SCHEMAS_DIR",
    "SPAN_BATCH_SCHEMA_NAME",
    "SPAN_FIELDS",
    "Frame",
    "SchemaRegistry",
    "SpanBatch",
    "WireError",
    "decode_frame",
    "decode_span_batch",
    "default_registry",
    "encode_frame",
    "encode_span_batch",
]
