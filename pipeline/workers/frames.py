"""The frame worker: check each frame's hash, put the blob in S3, commit its row with the offset."""

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
from pipeline.stores.frame_sink import FrameSink, SourcedFrame
from pipeline.stores.objects import FrameObjectStore, ObjectStoreError
from pipeline.wire.frames import decode_frame
from pipeline.wire.framing import WireError
from pipeline.workers.app import consumer_group
from pipeline.workers.dead_letter import send_to_dead_letter
from pipeline.workers.lag import LAG_REPORT_INTERVAL_S, LagTracker
from pipeline.workers.retry import retry_forever

log = logging.getLogger(__name__)

# Frames are large (tens of KB to MB), so writes are smaller and more frequent than span writes.
MAX_FRAMES_PER_WRITE = 50
WRITE_WINDOW_S = 0.1


def attach_frame_agent(app: faust.App, settings: Settings) -> None:
    """Attach the frame-storing agent to the app; fail at start-up if the bucket is unusable."""
    frames_topic = app.topic(settings.frames_topic, key_type=bytes, value_type=bytes)
    dlq_topic = app.topic(settings.frames_dlq_topic, key_type=bytes, value_type=bytes)
    objects = FrameObjectStore(settings)
    objects.check_bucket()
    sink = FrameSink(
        settings.database_dsn.reveal(),
        consumer_group(settings, "frames"),
        settings.frames_topic,
        objects,
    )
    lag = LagTracker(settings.frames_topic)

    @app.agent(frames_topic, name="store-frames")
    async def store_frames(stream: faust.StreamT) -> None:
        app.spanline_ready = True
        async for events in stream.take_events(MAX_FRAMES_PER_WRITE, within=WRITE_WINDOW_S):
            frames = await _decode(events, dlq_topic)
            if not frames:
                continue
            result = await retry_forever(
                lambda: asyncio.to_thread(_timed_write, sink, frames),
                what=f"frame write of {len(frames)} frames",
                sink="s3",
                retry_on=(psycopg.Error, ObjectStoreError, OSError),
            )
            lag.stored(frames)
            now_ns = time.time_ns()
            metrics.FRAMES_STORED.inc(result.frames_stored)
            metrics.FRAME_BYTES_STORED.inc(result.bytes_uploaded)
            metrics.FRAMES_DEDUPLICATED.inc(result.frames_deduplicated)
            histogram = metrics.END_TO_END_LATENCY.labels(sink="s3")
            for capture_ns in result.capture_ns_stored:
                histogram.observe(max(0.0, (now_ns - capture_ns) / 1e9))

    @app.timer(interval=LAG_REPORT_INTERVAL_S)
    async def report_lag() -> None:
        lag.report(app.consumer)


def _timed_write(sink: FrameSink, frames: Sequence[SourcedFrame]):  # noqa: ANN202
    with metrics.SINK_WRITE_DURATION.labels(sink="s3").time():
        return sink.write(frames)


async def _decode(events: Sequence[EventT], dlq_topic: faust.TopicT) -> list[SourcedFrame]:
    frames: list[SourcedFrame] = []
    for event in events:
        message = event.message
        try:
            frame = decode_frame(message.value)
        except WireError as error:
            await send_to_dead_letter(dlq_topic, event, error.reason, error)
            continue
        frames.append(
            SourcedFrame(
                partition=message.partition,
                offset=message.offset,
                run_id=frame.run_id,
                span_id=frame.span_id,
                step=frame.step,
                seq=frame.seq,
                capture_ns=frame.capture_ns,
                kind=frame.kind,
                content_type=frame.content_type,
                data=frame.data,
                sha256=frame.sha256,
                width=frame.width,
                height=frame.height,
            )
        )
    return frames
