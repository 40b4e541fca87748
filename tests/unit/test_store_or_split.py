"""store_or_split: one call for good data, one call per item once the sink rejects the data."""

from __future__ import annotations

import asyncio


class RejectedData(Exception):
    """Stands for a sink's data error, such as psycopg.DataError."""


def run_split(items: list[str]) -> tuple[list[str], list[list[str]], list[str]]:
    from pipeline.workers.retry import store_or_split

    calls: list[list[str]] = []
    rejected: list[str] = []

    async def store(part: list[str]) -> str:
        calls.append(part)
        if any(item.startswith("bad") for item in part):
            raise RejectedData(f"cannot store {part}")
        return "+".join(part)

    async def on_rejected(item: str, error: BaseException) -> str:
        rejected.append(item)
        return f"dead-lettered {item}"

    results = asyncio.run(store_or_split(store, items, on_rejected, rejected_data=(RejectedData,), what="test items"))
    return results, calls, rejected


def test_good_items_stored_in_one_call() -> None:
    results, calls, rejected = run_split(["a", "b", "c"])
    assert results == ["a+b+c"]
    assert calls == [["a", "b", "c"]]
    assert rejected == []


def test_rejected_item_split_from_the_others() -> None:
    results, calls, rejected = run_split(["a", "bad", "c"])
    assert results == ["a", "dead-lettered bad", "c"]
    assert calls == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]
    assert rejected == ["bad"]
