"""The frame sink: blob to the object store first, then the metadata row with its offset.

The blob goes first because its key is the content hash: a crash between the two steps leaves an
object with no row, which the redelivered message overwrites with the same bytes. The row and
the offset share one transaction, so each frame gets exactly one row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from pipeline.stores.copy_types import register_copy_dumpers
from pipeline.stores.objects import FrameObjectStore
from pipeline.stores.offsets import fresh_and_advanced, lock_next_offsets, save_next_offsets

log = logging.getLogger(__name__)

_FRAME_COLUMNS = (
    ("capture_time", "timestamptz"),
    ("run_id", "text"),
    ("span_id", "text"),
    ("step", "int4"),
    ("seq", "int8"),
    ("kind", "text"),
    ("content_type", "text"),
    ("sha256", "text"),
    ("size_bytes", "int8"),
    ("object_key", "text"),
    ("width", "int4"),
    ("height", "int4"),
)
_COPY_SQL = "COPY frames ({}) FROM STDIN (FORMAT BINARY)".format(
    ", ".join(name for name, _ in _FRAME_COLUMNS)
)


@dataclass
class SourcedFrame:
    """A decoded frame with the Kafka coordinates it was read from."""

    partition: int
    offset: int
    run_id: str
    span_id: str | None
    step: int
    seq: int
    capture_ns: int
    kind: str
    content_type: str
    data: bytes
    sha256: str
    width: int | None
    height: int | None


@dataclass
class FrameWriteResult:
    frames_stored: int
    frames_skipped: int
    bytes_uploaded: int
    frames_deduplicated: int
    capture_ns_stored: list[int]


class FrameSink:
    """Stores frames for one consumer group and topic. One sink per worker task."""

    def __init__(
        self, dsn: str, consumer_group: str, topic: str, objects: FrameObjectStore
    ) -> None:
        self._dsn = dsn
        self._consumer_group = consumer_group
        self._topic = topic
        self._objects = objects
        self._connection: psycopg.Connection | None = None

    def _connect(self) -> psycopg.Connection:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self._dsn)
            register_copy_dumpers(self._connection)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def write(self, frames: Sequence[SourcedFrame]) -> FrameWriteResult:
        """Upload blobs, then commit rows and offsets; raise on failure so the caller retries."""
        connection = self._connect()
        uploaded_bytes = 0
        deduplicated = 0
        try:
            with connection.transaction(), connection.cursor() as cursor:
                stored_next = lock_next_offsets(
                    cursor, self._consumer_group, self._topic, {f.partition for f in frames}
                )
                fresh, changed = fresh_and_advanced(frames, stored_next)
                rows = []
                for frame in fresh:
                    key, existed = self._objects.put_frame(
                        frame.data, frame.sha256, frame.content_type
                    )
                    if existed:
                        deduplicated += 1
                    else:
                        uploaded_bytes += len(frame.data)
                    rows.append((
                        frame.capture_ns, frame.run_id, frame.span_id, frame.step, frame.seq,
                        frame.kind, frame.content_type, frame.sha256, len(frame.data), key,
                        frame.width, frame.height,
                    ))
                if rows:
                    with cursor.copy(_COPY_SQL) as copy:
                        copy.set_types([pg_type for _, pg_type in _FRAME_COLUMNS])
                        for row in rows:
                            copy.write_row(row)
                if changed:
                    save_next_offsets(cursor, self._consumer_group, self._topic, changed)
        except psycopg.OperationalError:
            self.close()
            raise
        return FrameWriteResult(
            frames_stored=len(fresh),
            frames_skipped=len(frames) - len(fresh),
            bytes_uploaded=uploaded_bytes,
            frames_deduplicated=deduplicated,
            capture_ns_stored=[frame.capture_ns for frame in fresh],
        )
