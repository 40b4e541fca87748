"""The span worker: decode span batches as columns, price them, COPY them with their offsets."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import faust
import psycopg
from faust.types import EventT

from pipeline import metrics
from pipeline.config import Settings
from pipeline.pricing.columns import price_columns
from pipeline.pricing.prices import PriceBook
from pipeline.pricing.stream import attach_price_table
from pipeline.stores.span_sink import SinkWriteResult, SourcedSpanBatch, SpanSink
from pipeline.wire.framing import WireError
from pipeline.wire.spans import decode_span_batch
from pipeline.workers.app import consumer_group
from pipeline.workers.dead_letter import send_to_dead_letter
from pipeline.workers.lag import LAG_REPORT_INTERVAL_S, LagTracker
from pipeline.workers.retry import retry_forever, store_or_split

log = logging.getLogger(__name__)

# One take covers at most this many Kafka messages (each carries up to ~500 spans), or whatever
# arrived within WRITE_WINDOW_S, so a quiet topic waits at most 200 ms for its write.
MAX_MESSAGES_PER_WRITE = 200
WRITE_WINDOW_S = 0.2
# A take is stored in writes of at most this many messages, and the worker decodes the next
# chunk while the database stores the previous one. One write per take left the database idle
# during decoding and the worker idle during COPY.
MESSAGES_PER_CHUNK = 20


def attach_span_agent(app: faust.App, settings: Settings) -> None:
    """Attach the span-storing agent to the app."""
    spans_topic = app.topic(settings.spans_topic, key_type=bytes, value_type=bytes)
    dlq_topic = app.topic(settings.spans_dlq_topic, key_type=bytes, value_type=bytes)
    lag = LagTracker(settings.spans_topic)
    # Prices follow the compacted prices topic, so a change reaches running workers without a
    # restart. book() costs one integer comparison while nothing changed.
    prices = attach_price_table(app, settings)
    sink = SpanSink(
        settings.database_dsn.reveal(), consumer_group(settings, "spans"), settings.spans_topic
    )

    @app.agent(spans_topic, name="store-spans")
    async def store_spans(stream: faust.StreamT) -> None:
        app.spanline_ready = True
        async for events in stream.take_events(MAX_MESSAGES_PER_WRITE, within=WRITE_WINDOW_S):
            # Every chunk is stored before this body returns, because faust acks the take's
            # events as soon as it does.
            await _store_chunks(events, dlq_topic, prices.book(), sink, lag)

    @app.timer(interval=LAG_REPORT_INTERVAL_S)
    async def report_lag() -> None:
        lag.report(app.consumer)


def _timed_write(sink: SpanSink, batches: Sequence[SourcedSpanBatch]) -> SinkWriteResult:
    with metrics.SINK_WRITE_DURATION.labels(sink="timescaledb").time():
        return sink.write(batches)


async def _store_chunks(
    events: Sequence[EventT], dlq_topic: faust.TopicT, book: PriceBook, sink: SpanSink,
    lag: LagTracker,
) -> None:
    """Decode, price and store the events chunk by chunk, with one write in flight at a time.

    Writes run in a thread in event order, so the sink stays single-threaded and stored offsets
    only move forward. Returns once every chunk is stored.
    """
    in_flight: asyncio.Task[tuple[list[SourcedSpanBatch], SinkWriteResult]] | None = None
    try:
        for first in range(0, len(events), MESSAGES_PER_CHUNK):
            chunk = events[first : first + MESSAGES_PER_CHUNK]
            batches = await _decode_and_price(chunk, dlq_topic, book)
            if in_flight is not None:
                _account(*await in_flight, lag)
                in_flight = None
            if batches:
                in_flight = asyncio.ensure_future(_write_chunk(sink, batches, chunk, dlq_topic))
        if in_flight is not None:
            _account(*await in_flight, lag)
            in_flight = None
    finally:
        if in_flight is not None:
            # Let the write thread finish before the sink is used again; its outcome is moot.
            await asyncio.gather(in_flight, return_exceptions=True)


async def _write_with_retry(sink: SpanSink, batches: list[SourcedSpanBatch]) -> SinkWriteResult:
    """Write until the database takes it; raise psycopg.DataError when it rejects the data."""
    return await retry_forever(
        lambda: asyncio.to_thread(_timed_write, sink, batches),
        what=f"span write of {len(batches)} messages",
        sink="timescaledb",
        retry_on=(psycopg.Error,),
        give_up_on=(psycopg.DataError,),
    )


async def _write_chunk(
    sink: SpanSink, batches: list[SourcedSpanBatch], events: Sequence[EventT], dlq_topic: faust.TopicT
) -> tuple[list[SourcedSpanBatch], SinkWriteResult]:
    """Write a chunk. When the database rejects its data, write message by message instead.

    A message whose rows the database rejects (a NUL character in a text, attributes that are not
    JSON) goes to the dead-letter topic with reason `sink_rejected`. Its offset is stored without
    rows, so one bad message never stalls the partition behind it.
    """
    events_by_position = {(event.message.partition, event.message.offset): event for event in events}

    async def dead_letter(batch: SourcedSpanBatch, error: BaseException) -> SinkWriteResult:
        event = events_by_position[(batch.partition, batch.offset)]
        await send_to_dead_letter(dlq_topic, event, "sink_rejected", error, stage="store")
        log.error(
            "span batch rejected by the database run_id=%s partition=%d offset=%d error=%s",
            batch.run_id, batch.partition, batch.offset, error,
        )
        return await _write_with_retry(sink, [_empty_batch(batch.partition, batch.offset)])

    results = await store_or_split(
        lambda part: _write_with_retry(sink, part), batches, dead_letter,
        rejected_data=(psycopg.DataError,), what=f"{len(batches)} span messages",
    )
    return batches, SinkWriteResult(
        spans_stored=sum(result.spans_stored for result in results),
        messages_stored=sum(result.messages_stored for result in results),
        messages_skipped=sum(result.messages_skipped for result in results),
        end_ns_stored=[end_ns for result in results for end_ns in result.end_ns_stored],
    )


def _account(batches: Sequence[SourcedSpanBatch], result: SinkWriteResult, lag: LagTracker) -> None:
    lag.stored(batches)
    now_ns = time.time_ns()
    metrics.SPANS_STORED.inc(result.spans_stored)
    if result.messages_skipped:
        skipped_spans = sum(b.size for b in batches) - result.spans_stored
        metrics.SPANS_SKIPPED_DUPLICATE.inc(skipped_spans)
        log.info(
            "skipped redelivered messages count=%d spans=%d",
            result.messages_skipped, skipped_spans,
        )
    _observe_latency(result.end_ns_stored, now_ns)


async def _decode_and_price(
    events: Sequence[EventT], dlq_topic: faust.TopicT, book: PriceBook
) -> list[SourcedSpanBatch]:
    batches: list[SourcedSpanBatch] = []
    for event in events:
        message = event.message
        try:
            batch = decode_span_batch(message.value)
        except WireError as error:
            await send_to_dead_letter(dlq_topic, event, error.reason, error)
            # An empty batch still advances the stored offset past the rejected message.
            batches.append(_empty_batch(message.partition, message.offset))
            continue
        metrics.SPANS_CONSUMED.labels(topic=message.topic).inc(batch.size)
        batches.append(
            SourcedSpanBatch(
                partition=message.partition,
                offset=message.offset,
                run_id=batch.run_id,
                agent=batch.agent,
                size=batch.size,
                columns=batch.columns,
                cost_columns=price_columns(batch.columns, book),
            )
        )
    return batches


def _empty_batch(partition: int, offset: int) -> SourcedSpanBatch:
    return SourcedSpanBatch(
        partition=partition, offset=offset, run_id="", agent="", size=0, columns={}
    )


def _observe_latency(end_ns_values: Sequence[int], now_ns: int) -> None:
    # One observation per span would cost more than the rest of the bookkeeping. The histogram
    # gets a sample of at most 100 spans per write instead, spread evenly over the batch.
    if not end_ns_values:
        return
    step = max(1, len(end_ns_values) // 100)
    histogram = metrics.END_TO_END_LATENCY.labels(sink="timescaledb")
    for end_ns in end_ns_values[::step]:
        histogram.observe(max(0.0, (now_ns - end_ns) / 1e9))
