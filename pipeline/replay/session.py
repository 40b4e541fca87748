"""One viewer's replay session: play head, speed, seeks, live follow and frame sending."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from pipeline.replay import queries
from pipeline.replay.frames import FrameFetcher, FrameIndex, FrameRef, read_ahead_window
from pipeline.replay.protocol import (
    FLAG_LIVE,
    FLAG_SEEK,
    PROTOCOL_VERSION,
    Control,
    ProtocolError,
    encode_frame_header,
)
from pipeline.replay.sender import BoundedSender

logger = logging.getLogger(__name__)

SPANS_PER_MESSAGE = 200
# Rows become visible when their transaction commits, which can be after later ingest_time
# values were already read; re-reading this much overlap and dropping duplicates catches them.
INGEST_OVERLAP = timedelta(seconds=2)


@dataclass(frozen=True)
class SessionConfig:
    """Bounds and timings of one replay session."""

    max_queued_bytes: int = 4 * 1024 * 1024
    read_ahead: int = 16
    read_behind: int = 4
    live_poll_s: float = 0.25
    idle_poll_s: float = 2.0
    # When playback falls behind by more frames than this, only the newest due frame is sent.
    max_burst: int = 8


class ReplaySession:
    """Plays one run to one client through a BoundedSender."""

    def __init__(
        self,
        run_id: str,
        connection: psycopg.AsyncConnection[Any],
        fetcher: FrameFetcher,
        sender: BoundedSender,
        config: SessionConfig,
    ) -> None:
        self.run_id = run_id
        self._connection = connection
        self._fetcher = fetcher
        self._sender = sender
        self._config = config
        self.index = FrameIndex()
        self.opened = False
        self.playing = False
        self.live = False
        self.speed = 1.0
        self.position_ns = 0
        self.cursor = -1
        self.generation = 0
        self._last_tick = time.monotonic()
        self._wake = asyncio.Event()
        self._span_ids: set[str] = set()
        self._step_starts: dict[int, int] = {}
        self._spans_seen_at: datetime | None = None
        self._frames_seen_at: datetime | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._db_lock = asyncio.Lock()

    # Control messages

    async def handle(self, control: Control) -> None:
        """Apply one validated control message; raise ProtocolError when it cannot be applied."""
        if control.type == "ping":
            await self._send_json({"type": "pong", "id": control.request_id})
            return
        if control.type == "open":
            await self._open(control)
            return
        if not self.opened:
            raise ProtocolError("not_open", f"send an 'open' message before {control.type!r}", control.request_id)
        if control.type == "play":
            self._advance_clock()
            if self.index.end_ns is not None and self.position_ns >= self.index.end_ns and not self.live:
                self.position_ns = self.index.start_ns or 0
                self.cursor = -1
            self.playing = True
        elif control.type == "pause":
            self._advance_clock()
            self.playing = False
        elif control.type == "speed":
            self._advance_clock()
            self.speed = float(control.speed or 1.0)
        elif control.type == "follow":
            self.live = bool(control.live)
            if self.live:
                await self._poll_new_rows()
                if len(self.index):
                    await self._seek_to_index(len(self.index) - 1, self.index[-1].capture_ns, control)
        elif control.type == "seek":
            await self._seek(control)
        self._wake.set()
        await self.send_state(control.request_id)

    async def _open(self, control: Control) -> None:
        if self.opened:
            raise ProtocolError("already_open", f"run {self.run_id!r} is already open in this session", control.request_id)
        if control.run_id != self.run_id:
            raise ProtocolError("forbidden", f"this link does not open run {control.run_id!r}", control.request_id)
        async with self._db_lock:
            agent = await queries.run_agent(self._connection, self.run_id)
            if agent is None:
                raise ProtocolError("not_found", f"run {self.run_id!r} has no spans and no frames", control.request_id)
            refs, self._frames_seen_at = await queries.fetch_frames(self._connection, self.run_id)
            spans, self._spans_seen_at = await queries.fetch_spans(self._connection, self.run_id)
        self.index.extend(refs)
        self.opened = True
        first_span_ns = min((int(row["start_ns"]) for row in spans), default=None)
        self.position_ns = self.index.start_ns if self.index.start_ns is not None else (first_span_ns or 0)
        await self._send_json(
            {
                "type": "opened",
                "id": control.request_id,
                "protocol": PROTOCOL_VERSION,
                "run_id": self.run_id,
                "agent": agent,
                "frame_count": len(self.index),
                "frames": [ref.public() for ref in refs],
                "span_count": len(spans),
            }
        )
        await self._send_spans(spans)
        if len(self.index):
            await self._send_frame(0, flags=FLAG_SEEK)
            self._prefetch_around(0)
        self._last_tick = time.monotonic()
        self._tasks = [
            asyncio.create_task(self._playback_loop(), name=f"replay-playback-{self.run_id}"),
            asyncio.create_task(self._poll_loop(), name=f"replay-poll-{self.run_id}"),
        ]
        await self.send_state(control.request_id)

    async def _seek(self, control: Control) -> None:
        index: int | None
        if control.seq is not None:
            index = self.index.index_of_seq(control.seq)
            if index is None:
                raise ProtocolError("not_found", f"run has no frame with seq {control.seq}", control.request_id)
            target_ns = self.index[index].capture_ns
        elif control.step is not None:
            index = self.index.index_of_step(control.step)
            if index is not None:
                target_ns = self.index[index].capture_ns
            elif control.step in self._step_starts:
                target_ns = self._step_starts[control.step]
                index = self.index.index_at_time(target_ns)
            else:
                raise ProtocolError("not_found", f"run has no step {control.step}", control.request_id)
        else:
            target_ns = int(control.time_ns or 0)
            index = self.index.index_at_time(target_ns)
        # A seek leaves live follow: the viewer asked to look at another moment.
        self.live = False
        if index is None:
            self.generation += 1
            self.position_ns = target_ns
            self.cursor = -1
            return
        await self._seek_to_index(index, target_ns, control)

    async def _seek_to_index(self, index: int, target_ns: int, control: Control) -> None:
        self.generation += 1
        self.position_ns = target_ns
        self._last_tick = time.monotonic()
        ref = self.index[index]
        await self._send_json(
            {
                "type": "seeked",
                "id": control.request_id,
                "generation": self.generation,
                "position_ns": target_ns,
                "seq": ref.seq,
                "step": ref.step,
            }
        )
        await self._send_frame(index, flags=FLAG_SEEK | (FLAG_LIVE if self.live else 0))
        self.cursor = index
        self._prefetch_around(index)

    async def send_state(self, request_id: Any = None) -> None:
        await self._send_json(
            {
                "type": "state",
                "id": request_id,
                "playing": self.playing,
                "speed": self.speed,
                "live": self.live,
                "position_ns": self.position_ns,
                "generation": self.generation,
                "frame_count": len(self.index),
            }
        )

    # Playback

    def _advance_clock(self) -> None:
        now = time.monotonic()
        if self.playing:
            self.position_ns += int((now - self._last_tick) * 1e9 * self.speed)
        self._last_tick = now

    async def _playback_loop(self) -> None:
        while True:
            if not self.playing:
                self._wake.clear()
                await self._wake.wait()
                self._last_tick = time.monotonic()
                continue
            self._advance_clock()
            due = self.index.next_after(self.cursor, self.position_ns)
            if len(due) > self._config.max_burst:
                due = due[-1:]
            for index in due:
                await self._send_frame(index, flags=FLAG_LIVE if self.live else 0)
                self.cursor = index
            if due:
                self._prefetch_around(self.cursor)
            end_ns = self.index.end_ns
            if not self.live and (end_ns is None or self.position_ns >= end_ns) and self.cursor >= len(self.index) - 1:
                self.playing = False
                await self._send_json({"type": "ended", "position_ns": self.position_ns})
                await self.send_state()
                continue
            await self._sleep_until_next_frame()

    async def _sleep_until_next_frame(self) -> None:
        wait_s = 0.25
        if self.cursor + 1 < len(self.index):
            gap_ns = self.index[self.cursor + 1].capture_ns - self.position_ns
            wait_s = min(wait_s, max(gap_ns / 1e9 / self.speed, 0.005))
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=wait_s)
        except asyncio.TimeoutError:
            pass

    def _prefetch_around(self, index: int) -> None:
        window = read_ahead_window(index, len(self.index), self._config.read_ahead, self._config.read_behind)
        self._fetcher.prefetch(self.index[position] for position in window)

    async def _send_frame(self, index: int, flags: int = 0) -> None:
        ref: FrameRef = self.index[index]
        try:
            data = await self._fetcher.get(ref)
        except Exception as error:  # a missing or unreadable object must not end the session
            logger.warning("frame unavailable run_id=%s seq=%d error=%s", self.run_id, ref.seq, error)
            await self._send_json(
                {"type": "error", "code": "frame_unavailable", "seq": ref.seq,
                 "message": f"frame seq {ref.seq} could not be read from the object store; run `spanline replay verify {self.run_id}`"}
            )
            return
        header = encode_frame_header(
            seq=ref.seq,
            step=ref.step,
            capture_ns=ref.capture_ns,
            content_type=ref.content_type,
            sha256_hex=ref.sha256,
            generation=self.generation,
            flags=flags,
        )
        await self._sender.send(header + data)

    # Live rows

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self._config.live_poll_s if self.live else self._config.idle_poll_s)
            try:
                await self._poll_new_rows()
            except psycopg.Error as error:
                logger.warning("live poll failed run_id=%s error=%s; retrying", self.run_id, error)

    async def _poll_new_rows(self) -> None:
        async with self._db_lock:
            span_since = self._spans_seen_at - INGEST_OVERLAP if self._spans_seen_at else None
            frame_since = self._frames_seen_at - INGEST_OVERLAP if self._frames_seen_at else None
            spans, spans_at = await queries.fetch_spans(self._connection, self.run_id, span_since)
            refs, frames_at = await queries.fetch_frames(self._connection, self.run_id, frame_since)
        if spans_at is not None:
            self._spans_seen_at = max(spans_at, self._spans_seen_at or spans_at)
        if frames_at is not None:
            self._frames_seen_at = max(frames_at, self._frames_seen_at or frames_at)
        await self._send_spans(spans)
        added = self.index.extend(refs)
        if not added:
            return
        await self._send_json({"type": "frames", "frames": [ref.public() for ref in added]})
        if self.live:
            newest = len(self.index) - 1
            self.position_ns = max(self.position_ns, self.index[newest].capture_ns)
            await self._send_frame(newest, flags=FLAG_LIVE)
            self.cursor = newest
        elif self.cursor >= 0:
            # A frame that lands before the play head (late delivery) must not be replayed out of order.
            self.cursor = self.index.index_at_time(self.position_ns) or self.cursor
        self._wake.set()

    async def _send_spans(self, rows: list[dict[str, Any]]) -> None:
        new_rows = [row for row in rows if row["span_id"] not in self._span_ids]
        for row in new_rows:
            self._span_ids.add(row["span_id"])
            step = int(row["step"])
            start = int(row["start_ns"])
            if row["kind"] in queries.ACTION_KINDS and (step not in self._step_starts or start < self._step_starts[step]):
                self._step_starts[step] = start
        for offset in range(0, len(new_rows), SPANS_PER_MESSAGE):
            chunk = new_rows[offset : offset + SPANS_PER_MESSAGE]
            await self._send_json({"type": "spans", "spans": [queries.span_json(row) for row in chunk]})

    async def _send_json(self, message: dict[str, Any]) -> None:
        await self._sender.send(json.dumps(message, default=str, separators=(",", ":")))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
