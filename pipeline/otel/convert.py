"""OTLP exports in, Spanline span batches (or importer runs) out: the entry points of pipeline.otel.

    from pipeline.otel.convert import convert_export

    converted = convert_export(kafka_value, "otlp_proto")
    for batch in converted.batches:     # one Avro span batch per run, keyed by run id
        producer.produce(settings.spans_topic, key=batch.key, value=batch.value)
    for rejected in converted.rejected: # one-span OTLP exports for the dead-letter topic
        ...

`convert_export` raises OtlpDecodeError when the bytes are no export at all. Pure: no I/O.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from pipeline.otel.decode import DecodedTraces, OtlpDecodeError, decode_json_document, decode_otlp
from pipeline.otel.mapping import ConversionState, MappedSpan, MappedTraces, RejectedSpan, RunSpans, map_traces
from pipeline.sdk.run import ROW_FIELDS, InvalidSpanError, build_row
from pipeline.wire.framing import WireError
from pipeline.wire.spans import DEFAULT_SDK, encode_span_batch

logger = logging.getLogger(__name__)

SDK_NAME = DEFAULT_SDK.replace("spanline-python", "spanline-otlp", 1)
# Kafka's default max.message.bytes is 1,000,012 bytes; a batch above this limit is split in
# halves until it fits, and a single span that still does not fit is rejected (span_too_large).
MAX_BATCH_BYTES = 900_000
# At most this many spans per batch, the same bound the SDK uses.
MAX_BATCH_SPANS = 500

__all__ = [
    "ConversionState",
    "ConvertedExport",
    "EncodedBatch",
    "OtlpDecodeError",
    "convert_export",
    "encode_runs",
    "imported_runs",
    "map_export",
]


@dataclass(frozen=True)
class EncodedBatch:
    """One framed Avro span batch of one run, ready for the spans topic."""

    run_id: str
    agent: str
    size: int
    value: bytes

    @property
    def key(self) -> bytes:
        return self.run_id.encode("utf-8")


@dataclass
class ConvertedExport:
    """One OTLP export converted: span batches to publish and spans to dead-letter."""

    batches: list[EncodedBatch]
    rejected: list[RejectedSpan]
    span_count: int

    @property
    def accepted_count(self) -> int:
        return sum(batch.size for batch in self.batches)


def map_export(
    data: bytes | DecodedTraces, encoding: str = "otlp_proto", state: ConversionState | None = None
) -> MappedTraces:
    """Decode (unless already decoded) and map one export to runs of spans."""
    decoded = data if isinstance(data, DecodedTraces) else decode_otlp(data, encoding)
    return map_traces(decoded, state)


def convert_export(
    data: bytes, encoding: str = "otlp_proto", state: ConversionState | None = None, *, sdk: str = SDK_NAME
) -> ConvertedExport:
    """Decode, map and encode one export: one or more span batches per run, keyed by run id."""
    mapped = map_export(data, encoding, state)
    batches, rejected = encode_runs(mapped.runs, sdk=sdk)
    return ConvertedExport(batches=batches, rejected=mapped.rejected + rejected, span_count=mapped.span_count)


def encode_runs(runs: list[RunSpans], *, sdk: str = SDK_NAME) -> tuple[list[EncodedBatch], list[RejectedSpan]]:
    """Encode each run's spans as span batches of at most MAX_BATCH_SPANS spans and MAX_BATCH_BYTES."""
    batches: list[EncodedBatch] = []
    rejected: list[RejectedSpan] = []
    for run in runs:
        rows: list[tuple[Any, ...]] = []
        row_spans: list[MappedSpan] = []
        for span in run.spans:
            try:
                rows.append(_row(span))
                row_spans.append(span)
            except (InvalidSpanError, TypeError, ValueError) as error:
                rejected.append(_rejected_after_mapping(span, "invalid_span", str(error)))
        for start in range(0, len(rows), MAX_BATCH_SPANS):
            _encode_fitting(
                run, rows[start:start + MAX_BATCH_SPANS], row_spans[start:start + MAX_BATCH_SPANS],
                sdk, batches, rejected,
            )
    return batches, rejected


def _row(span: MappedSpan) -> tuple[Any, ...]:
    return build_row(
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_span_id,
        step=span.step,
        kind=span.kind,
        name=span.name,
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        status=span.status,
        error_message=span.error_message,
        provider=span.provider,
        model=span.model,
        usage=span.usage,
        reported_cost_usd=span.reported_cost_usd,
        tool_name=span.tool_name,
        tool_args=span.tool_args,
        attributes=span.attributes,
    )


def _encode_fitting(
    run: RunSpans,
    rows: list[tuple[Any, ...]],
    spans: list[MappedSpan],
    sdk: str,
    batches: list[EncodedBatch],
    rejected: list[RejectedSpan],
) -> None:
    if not rows:
        return
    columns = {name: [row[index] for row in rows] for index, name in enumerate(ROW_FIELDS)}
    try:
        value = encode_span_batch(run.run_id, run.agent, columns, sdk=sdk)
    except WireError as error:
        for span in spans:
            rejected.append(_rejected_after_mapping(span, "encode_failed", str(error)))
        return
    if len(value) <= MAX_BATCH_BYTES:
        batches.append(EncodedBatch(run.run_id, run.agent, len(rows), value))
        return
    if len(rows) == 1:
        detail = f"one span encodes to {len(value)} bytes, over the {MAX_BATCH_BYTES}-byte batch limit"
        rejected.append(_rejected_after_mapping(spans[0], "span_too_large", detail))
        return
    middle = len(rows) // 2
    _encode_fitting(run, rows[:middle], spans[:middle], sdk, batches, rejected)
    _encode_fitting(run, rows[middle:], spans[middle:], sdk, batches, rejected)


def _rejected_after_mapping(span: MappedSpan, reason: str, detail: str) -> RejectedSpan:
    # The original protobuf span is gone by now, so the dead-letter record carries the mapped
    # span as a JSON attribute of a bare OTLP span with the original ids and times.
    from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

    export = TracesData()
    otlp_span = export.resource_spans.add().scope_spans.add().spans.add()
    otlp_span.trace_id = bytes.fromhex(span.trace_id)
    otlp_span.span_id = bytes.fromhex(span.span_id)
    otlp_span.name = span.name
    otlp_span.start_time_unix_nano = span.start_ns
    otlp_span.end_time_unix_nano = span.end_ns
    mapped = otlp_span.attributes.add()
    mapped.key = "spanline.mapped_span"
    mapped.value.string_value = json.dumps(
        {name: getattr(span, name) for name in ("run_id", "kind", "model", "tool_name", "attributes")},
        ensure_ascii=False,
        default=str,
    )
    logger.warning("span rejected run_id=%s span_id=%s reason=%s detail=%s", span.run_id, span.span_id, reason, detail)
    return RejectedSpan(span.trace_id, span.span_id, reason, detail, export)


def imported_runs(document: Any, *, source: str = "", agent: str | None = None) -> list[Any]:
    """Turn an OTLP/JSON document (or OTLP protobuf bytes) into `ImportedRun` values for the importer.

    Spans that would be rejected live are skipped with a warning naming the file. Raises
    OtlpDecodeError when the input is no OTLP export.
    """
    from pipeline.importers.model import ImportedRun, ImportedSpan

    if isinstance(document, (bytes, bytearray)):
        decoded = decode_otlp(bytes(document), "otlp_proto")
    else:
        decoded = decode_json_document(document)
    mapped = map_traces(decoded)
    for rejected in mapped.rejected:
        logger.warning(
            "span skipped file=%s trace_id=%s span_id=%s reason=%s detail=%s",
            source, rejected.trace_id, rejected.span_id, rejected.reason, rejected.detail,
        )
    runs = []
    for run in mapped.runs:
        spans = [
            ImportedSpan(
                kind=span.kind,
                name=span.name,
                start_ns=span.start_ns,
                end_ns=span.end_ns,
                step=span.step,
                span_id=span.span_id,
                parent_span_id=span.parent_span_id,
                trace_id=span.trace_id,
                status=span.status,
                error_message=span.error_message,
                provider=span.provider,
                model=span.model,
                usage=span.usage,
                tool_name=span.tool_name,
                tool_args=span.tool_args,
                attributes=span.attributes,
                reported_cost_usd=span.reported_cost_usd,
            )
            for span in run.spans
        ]
        runs.append(ImportedRun(run_id=run.run_id, agent=agent or run.agent, spans=spans, source=source))
    return runs
