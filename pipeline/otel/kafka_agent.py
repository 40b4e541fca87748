"""The OTLP converter worker: OTLP exports from the Collector's Kafka topic into span batches.

The OpenTelemetry Collector's Kafka exporter writes one trace export per record, without a key
unless `partition_traces_by_id` is set. This faust app reads them in its own consumer group
(`<consumer_group_prefix>-otlp`, never the Collector's `otel-collector`), converts each export
with `pipeline.otel.convert`, publishes one span batch per run (keyed by run id) to the spans
topic and waits for Kafka to confirm them before the export's offset is committed. Exports that
do not decode go to the dead-letter topic whole (reason `otlp_decode`); single rejected spans go
there as one-span OTLP protobuf exports.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import faust
from aiohttp import web as aiohttp_web
from faust.types import EventT
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pipeline.config import Settings
from pipeline.otel.convert import ConversionState, OtlpDecodeError, convert_export
from pipeline.otel.decode import ENCODINGS
from pipeline.otel.outputs import (
    OTLP_EXPORTS_UNDECODABLE,
    count_outcome,
    otlp_dead_letter_topic,
    rejected_span_headers,
)
from pipeline.workers.dead_letter import send_to_dead_letter

log = logging.getLogger(__name__)

ROLE = "otlp"
# One Collector export is at most 1 MB by default (producer::max_message_bytes), but Collectors
# are often configured higher; 16 MiB matches the span workers.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Exports converted before their span batches are awaited together, or whatever arrived within
# the window: awaiting every export alone would cost one broker round trip each.
MAX_EXPORTS_PER_ROUND = 100
ROUND_WINDOW_S = 0.2

def consumer_group(settings: Settings) -> str:
    return f"{settings.consumer_group_prefix}-{ROLE}"


def create_otlp_app(settings: Settings, web_host: str, web_port: int) -> faust.App:
    """Build the faust app of the converter role; `attach_otlp_agent` adds its agent."""
    app = faust.App(
        consumer_group(settings),
        broker=f"kafka://{settings.kafka_bootstrap}",
        key_serializer="raw",
        value_serializer="raw",
        datadir=str(settings.state_dir / "faust" / ROLE),
        web_host=web_host,
        web_port=web_port,
        web_bind=web_host,
        # Topics are created by `spanline stack up` or the operator, with their partition counts.
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=MAX_MESSAGE_BYTES,
        consumer_max_fetch_size=MAX_MESSAGE_BYTES,
        processing_guarantee="at_least_once",
    )
    app.spanline_ready = False  # type: ignore[attr-defined]

    @app.page("/metrics")
    async def prometheus_metrics(web, request):  # noqa: ANN001 - faust view signature
        return aiohttp_web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def liveness(web, request):  # noqa: ANN001
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readiness(web, request):  # noqa: ANN001
        assigned = sorted(f"{tp.topic}[{tp.partition}]" for tp in app.consumer.assignment())
        ready = bool(app.spanline_ready) and bool(assigned)
        return web.json({"ready": ready, "assigned": assigned}, status=200 if ready else 503)

    return app


def attach_otlp_agent(app: faust.App, settings: Settings, encoding: str) -> None:
    """Attach the converting agent: `encoding` is `otlp_proto` or `otlp_json`, as the exporter writes."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown OTLP encoding {encoding!r}; use one of {', '.join(ENCODINGS)}")
    otlp_topic = app.topic(settings.otlp_topic, key_type=bytes, value_type=bytes)
    spans_topic = app.topic(settings.spans_topic, key_type=bytes, value_type=bytes)
    dlq_topic = app.topic(otlp_dead_letter_topic(settings), key_type=bytes, value_type=bytes)
    state = ConversionState()

    @app.agent(otlp_topic, name="convert-otlp")
    async def convert_otlp(stream: faust.StreamT) -> None:
        app.spanline_ready = True
        async for events in stream.take_events(MAX_EXPORTS_PER_ROUND, within=ROUND_WINDOW_S):
            await _convert_round(events, encoding, state, spans_topic, dlq_topic)


async def _convert_round(
    events: Sequence[EventT],
    encoding: str,
    state: ConversionState,
    spans_topic: faust.TopicT,
    dlq_topic: faust.TopicT,
) -> None:
    pending = []
    for event in events:
        message = event.message
        try:
            converted = convert_export(message.value or b"", encoding, state)
        except OtlpDecodeError as error:
            OTLP_EXPORTS_UNDECODABLE.labels(input="kafka").inc()
            await send_to_dead_letter(dlq_topic, event, "otlp_decode", error)
            continue
        for batch in converted.batches:
            pending.append(await spans_topic.send(key=batch.key, value=batch.value))
        for rejected in converted.rejected:
            headers = rejected_span_headers(rejected, message.topic, message.partition, message.offset)
            pending.append(await dlq_topic.send(
                key=rejected.trace_id.encode(), value=rejected.export.SerializeToString(), headers=headers,
            ))
        count_outcome(converted, "kafka")
        if converted.rejected:
            log.warning(
                "rejected spans topic=%s partition=%s offset=%s count=%d reasons=%s",
                message.topic, message.partition, message.offset, len(converted.rejected),
                sorted({rejected.reason for rejected in converted.rejected}),
            )
    # The offsets of this round are committed only after the loop asks for the next round, so
    # waiting here means no export is marked done before Kafka has its span batches.
    for future in pending:
        await future
