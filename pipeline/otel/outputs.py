"""What the Kafka converter and the HTTP receiver share: dead-letter records and span counters."""

from __future__ import annotations

from prometheus_client import Counter

from pipeline.config import Settings
from pipeline.otel.convert import ConvertedExport
from pipeline.otel.mapping import RejectedSpan

OTLP_SPANS = Counter(
    "spanline_otlp_spans", "OTLP spans received, by input and outcome (accepted or rejected).",
    ["input", "outcome"],
)
OTLP_REJECTED = Counter(
    "spanline_otlp_spans_rejected", "OTLP spans rejected, by input and reason.", ["input", "reason"]
)
OTLP_EXPORTS_UNDECODABLE = Counter(
    "spanline_otlp_exports_undecodable", "OTLP exports that did not decode at all, by input.", ["input"]
)


def otlp_dead_letter_topic(settings: Settings) -> str:
    """Return the dead-letter topic of the OTLP input: the OTLP topic name plus `.dlq`."""
    return f"{settings.otlp_topic}.dlq"


def rejected_span_headers(rejected: RejectedSpan, topic: str, partition: int | None, offset: int | None) -> dict[str, bytes]:
    """Return the `dlq.*` headers of one rejected span's dead-letter record."""
    return {
        "dlq.original.topic": topic.encode(),
        "dlq.original.partition": str(partition if partition is not None else "").encode(),
        "dlq.original.offset": str(offset if offset is not None else "").encode(),
        "dlq.reason": rejected.reason.encode(),
        "dlq.stage": b"map",
        "dlq.error.message": rejected.detail[:1000].encode("utf-8", "replace"),
        "dlq.trace_id": rejected.trace_id.encode(),
        "dlq.span_id": rejected.span_id.encode(),
        "content-type": b"application/x-protobuf",
    }


def count_outcome(converted: ConvertedExport, input_name: str) -> None:
    """Count accepted and rejected spans of one export in the Prometheus counters."""
    OTLP_SPANS.labels(input=input_name, outcome="accepted").inc(converted.accepted_count)
    if converted.rejected:
        OTLP_SPANS.labels(input=input_name, outcome="rejected").inc(len(converted.rejected))
        for rejected in converted.rejected:
            OTLP_REJECTED.labels(input=input_name, reason=rejected.reason).inc()
