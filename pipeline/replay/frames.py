"""Frame index of a run, a bounded LRU of frame bytes and the read-ahead around the play head.

Frame bytes are fetched from S3 only when the play head approaches them: the index holds the
frames' metadata rows, never their bytes.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameRef:
    """One row of the `frames` table: where a frame's bytes are and what they should hash to."""

    seq: int
    step: int
    capture_ns: int
    kind: str
    content_type: str
    sha256: str
    size_bytes: int
    object_key: str
    span_id: str | None = None
    width: int | None = None
    height: int | None = None

    def public(self) -> dict[str, object]:
        """Return the fields a viewer may see; the object key stays on the server."""
        return {
            "seq": self.seq,
            "step": self.step,
            "capture_ns": self.capture_ns,
            "kind": self.kind,
            "content_type": self.content_type,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "span_id": self.span_id,
            "width": self.width,
            "height": self.height,
        }


class FrameIndex:
    """A run's frames ordered by capture time, then seq."""

    def __init__(self, refs: Iterable[FrameRef] = ()) -> None:
        self._refs: list[FrameRef] = []
        self._keys: list[tuple[int, int]] = []
        self._seqs: set[int] = set()
        self.extend(refs)

    def __len__(self) -> int:
        return len(self._refs)

    def __getitem__(self, index: int) -> FrameRef:
        return self._refs[index]

    def extend(self, refs: Iterable[FrameRef]) -> list[FrameRef]:
        """Add frames not seen before (by seq); return the added ones in index order."""
        added = [ref for ref in refs if ref.seq not in self._seqs]
        for ref in sorted(added, key=lambda item: (item.capture_ns, item.seq)):
            key = (ref.capture_ns, ref.seq)
            position = bisect.bisect_right(self._keys, key)
            self._keys.insert(position, key)
            self._refs.insert(position, ref)
            self._seqs.add(ref.seq)
        return sorted(added, key=lambda item: (item.capture_ns, item.seq))

    def index_at_time(self, time_ns: int) -> int | None:
        """Return the index of the frame on screen at `time_ns`: the latest captured at or before it.

        Before the first frame, the first frame is returned, so a seek always shows something.
        """
        if not self._refs:
            return None
        position = bisect.bisect_right(self._keys, (time_ns, 2**63)) - 1
        return max(position, 0)

    def index_of_step(self, step: int) -> int | None:
        """Return the index of the first frame captured for `step`, or None when it has none."""
        for index, ref in enumerate(self._refs):
            if ref.step == step:
                return index
        return None

    def index_of_seq(self, seq: int) -> int | None:
        for index, ref in enumerate(self._refs):
            if ref.seq == seq:
                return index
        return None

    def next_after(self, index: int, time_ns: int) -> list[int]:
        """Return the indexes after `index` whose capture time is at or before `time_ns`."""
        end = bisect.bisect_right(self._keys, (time_ns, 2**63))
        return list(range(index + 1, max(index + 1, end)))

    @property
    def start_ns(self) -> int | None:
        return self._refs[0].capture_ns if self._refs else None

    @property
    def end_ns(self) -> int | None:
        return self._refs[-1].capture_ns if self._refs else None


def read_ahead_window(position: int, count: int, ahead: int, behind: int) -> range:
    """Return the frame indexes worth having in cache around the play head at `position`.

    `ahead` frames after it (playback moves forward) and `behind` before it (a short scrub back).
    """
    if count <= 0:
        return range(0)
    position = min(max(position, 0), count - 1)
    return range(max(0, position - behind), min(count, position + ahead + 1))


class BytesLRU:
    """Frame bytes by object key, bounded by total bytes and by entry count."""

    def __init__(self, max_bytes: int, max_entries: int) -> None:
        if max_bytes <= 0 or max_entries <= 0:
            raise ValueError(f"cache bounds must be positive: max_bytes={max_bytes} max_entries={max_entries}")
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self.size_bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> bytes | None:
        data = self._entries.get(key)
        if data is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return data

    def put(self, key: str, data: bytes) -> None:
        """Cache `data`, evicting the least recently used entries; skip a blob larger than the bound."""
        if len(data) > self.max_bytes:
            return
        previous = self._entries.pop(key, None)
        if previous is not None:
            self.size_bytes -= len(previous)
        self._entries[key] = data
        self.size_bytes += len(data)
        while self.size_bytes > self.max_bytes or len(self._entries) > self.max_entries:
            _, evicted = self._entries.popitem(last=False)
            self.size_bytes -= len(evicted)


class FrameFetcher:
    """Fetches frame bytes through the LRU, sharing one S3 read among concurrent requests.

    `read_object` is blocking (the minio client) and runs in worker threads; at most
    `max_parallel` reads run at once, so read-ahead cannot flood the S3 server.
    """

    def __init__(self, read_object: Callable[[str], bytes], cache: BytesLRU, max_parallel: int = 4) -> None:
        self._read_object = read_object
        self.cache = cache
        self._in_flight: dict[str, asyncio.Future[bytes]] = {}
        self._semaphore = asyncio.Semaphore(max_parallel)
        self.reads = 0

    async def get(self, ref: FrameRef) -> bytes:
        """Return the bytes of `ref` from the cache or S3; raise the store's error when it fails."""
        cached = self.cache.get(ref.object_key)
        if cached is not None:
            return cached
        pending = self._in_flight.get(ref.object_key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._in_flight[ref.object_key] = future
        try:
            async with self._semaphore:
                self.reads += 1
                data = await asyncio.to_thread(self._read_object, ref.object_key)
            self.cache.put(ref.object_key, data)
            future.set_result(data)
            return data
        except BaseException as error:
            future.set_exception(error)
            # The error was raised to this caller; mark it retrieved for the shared future.
            future.exception()
            raise
        finally:
            del self._in_flight[ref.object_key]

    def prefetch(self, refs: Iterable[FrameRef]) -> list[asyncio.Task[None]]:
        """Start background reads of the refs not cached or in flight; return the tasks."""
        tasks = []
        for ref in refs:
            if ref.object_key in self.cache or ref.object_key in self._in_flight:
                continue
            tasks.append(asyncio.create_task(self._prefetch_one(ref)))
        return tasks

    async def _prefetch_one(self, ref: FrameRef) -> None:
        try:
            await self.get(ref)
        except Exception as error:  # a failed read-ahead is retried when the frame is due
            logger.warning("read-ahead failed seq=%d key=%s error=%s", ref.seq, ref.object_key, error)
