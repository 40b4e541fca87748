"""Frame index lookups, the read-ahead window, cache bounds and the bounded sender."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.replay.frames import BytesLRU, FrameFetcher, FrameIndex, FrameRef, read_ahead_window
from pipeline.replay.sender import BoundedSender


def ref(seq: int, step: int, capture_ns: int) -> FrameRef:
    return FrameRef(seq=seq, step=step, capture_ns=capture_ns, kind="viewport", content_type="image/png",
                    sha256=f"{seq:064x}", size_bytes=10, object_key=f"frames/sha256/00/{seq:064x}")


def test_index_orders_by_capture_time() -> None:
    index = FrameIndex([ref(2, 2, 300), ref(0, 1, 100), ref(1, 1, 200)])
    assert [index[i].seq for i in range(len(index))] == [0, 1, 2]


def test_index_at_time_is_latest_at_or_before() -> None:
    index = FrameIndex([ref(0, 1, 100), ref(1, 2, 200), ref(2, 3, 300)])
    assert index.index_at_time(250) == 1
    assert index.index_at_time(200) == 1
    assert index.index_at_time(50) == 0
    assert index.index_at_time(10_000) == 2


def test_index_of_step_is_first_frame_of_step() -> None:
    index = FrameIndex([ref(0, 1, 100), ref(1, 2, 200), ref(2, 2, 250)])
    assert index.index_of_step(2) == 1
    assert index.index_of_step(9) is None


def test_index_ignores_repeated_seq() -> None:
    index = FrameIndex([ref(0, 1, 100)])
    added = index.extend([ref(0, 1, 100), ref(1, 1, 150)])
    assert [item.seq for item in added] == [1]
    assert len(index) == 2


def test_next_after_lists_due_frames() -> None:
    index = FrameIndex([ref(0, 1, 100), ref(1, 1, 200), ref(2, 1, 300)])
    assert index.next_after(0, 250) == [1]
    assert index.next_after(-1, 300) == [0, 1, 2]
    assert index.next_after(2, 1_000) == []


@pytest.mark.parametrize(
    ("position", "count", "expected"),
    [(0, 100, range(0, 17)), (50, 100, range(46, 67)), (99, 100, range(95, 100)), (5, 0, range(0))],
)
def test_read_ahead_window_is_bounded(position: int, count: int, expected: range) -> None:
    assert read_ahead_window(position, count, ahead=16, behind=4) == expected


def test_lru_evicts_by_bytes() -> None:
    cache = BytesLRU(max_bytes=10, max_entries=100)
    cache.put("a", b"12345")
    cache.put("b", b"12345")
    cache.get("a")
    cache.put("c", b"123")
    assert "b" not in cache
    assert "a" in cache
    assert cache.size_bytes <= 10


def test_lru_evicts_by_count() -> None:
    cache = BytesLRU(max_bytes=1_000, max_entries=2)
    for key in "abc":
        cache.put(key, b"x")
    assert len(cache) == 2
    assert "a" not in cache


def test_lru_skips_blob_over_bound() -> None:
    cache = BytesLRU(max_bytes=4, max_entries=10)
    cache.put("big", b"12345")
    assert len(cache) == 0


def test_fetcher_reads_each_object_once() -> None:
    reads: list[str] = []

    def read(key: str) -> bytes:
        reads.append(key)
        return key.encode()

    async def scenario() -> None:
        fetcher = FrameFetcher(read, BytesLRU(1_000_000, 100))
        frame = ref(1, 1, 1)
        results = await asyncio.gather(*(fetcher.get(frame) for _ in range(5)))
        assert all(result == frame.object_key.encode() for result in results)
        await fetcher.get(frame)

    asyncio.run(scenario())
    assert len(reads) == 1


def test_sender_never_queues_past_bound() -> None:
    sent: list[int] = []
    gate = asyncio.Event()

    async def slow_send(message: bytes) -> None:
        await gate.wait()
        sent.append(len(message))

    async def scenario() -> BoundedSender:
        sender = BoundedSender(slow_send, slow_send, max_queued_bytes=1_000)  # type: ignore[arg-type]
        sender.start()
        producer = asyncio.create_task(_send_many(sender, 20, 300))
        await asyncio.sleep(0.05)
        assert sender.queued_bytes <= 1_000
        assert not producer.done()
        gate.set()
        await asyncio.wait_for(producer, 5)
        while sender.queued_bytes:
            await asyncio.sleep(0.01)
        await sender.close()
        return sender

    sender = asyncio.run(scenario())
    assert sent == [300] * 20
    assert sender.peak_queued_bytes <= 1_000


def test_sender_sends_oversized_message_alone() -> None:
    sent: list[int] = []

    async def send(message: bytes) -> None:
        sent.append(len(message))

    async def scenario() -> None:
        sender = BoundedSender(send, send, max_queued_bytes=100)  # type: ignore[arg-type]
        sender.start()
        await asyncio.wait_for(sender.send(b"x" * 500), 2)
        while sender.queued_bytes:
            await asyncio.sleep(0.01)
        await sender.close()

    asyncio.run(scenario())
    assert sent == [500]


async def _send_many(sender: BoundedSender, count: int, size: int) -> None:
    for _ in range(count):
        await sender.send(b"x" * size)
