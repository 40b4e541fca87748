"""Retrying a sink write until it succeeds: a sink outage must stall the stream, never lose it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pipeline import metrics

log = logging.getLogger(__name__)

T = TypeVar("T")
Item = TypeVar("Item")

INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0


async def retry_forever(
    attempt: Callable[[], Awaitable[T]],
    *,
    what: str,
    sink: str,
    retry_on: tuple[type[BaseException], ...],
    give_up_on: tuple[type[BaseException], ...] = (),
) -> T:
    """Await `attempt()` until it succeeds, backing off exponentially on the given errors.

    The stream does not advance meanwhile, so Kafka keeps the messages and the consumer lag
    grows: that is the back-pressure signal operators alert on. Errors in `give_up_on` are raised
    at once, even when they are also in `retry_on`: they come from the data, so a retry fails the
    same way.
    """
    backoff_s = INITIAL_BACKOFF_S
    failures = 0
    while True:
        try:
            result = await attempt()
        except give_up_on:
            metrics.SINK_ERRORS.labels(sink=sink, error_type="rejected_data").inc()
            raise
        except retry_on as error:
            failures += 1
            metrics.SINK_ERRORS.labels(sink=sink, error_type=type(error).__name__).inc()
            log.warning(
                "sink write failed, retrying sink=%s what=%r attempt=%d retry_in_s=%.1f error=%s",
                sink, what, failures, backoff_s, error,
            )
            await asyncio.sleep(backoff_s)
            backoff_s = min(MAX_BACKOFF_S, backoff_s * 2)
            continue
        if failures:
            log.info("sink write recovered sink=%s what=%r attempts=%d", sink, what, failures + 1)
        return result


async def store_or_split(
    store: Callable[[list[Item]], Awaitable[T]],
    items: list[Item],
    on_rejected: Callable[[Item, BaseException], Awaitable[T | None]],
    *,
    rejected_data: tuple[type[BaseException], ...],
    what: str,
) -> list[T]:
    """Store `items` in one call. When the sink rejects their data, store them one at a time.

    An item the sink rejects on its own goes to `on_rejected`, so one bad item never holds back
    the others. Returns the results of the successful calls and of `on_rejected`, in order.
    """
    try:
        return [await store(items)]
    except rejected_data as error:
        log.warning("sink rejected the data of %s, storing them one at a time error=%s", what, error)

    results: list[T] = []
    for item in items:
        try:
            results.append(await store([item]))
        except rejected_data as error:
            result = await on_rejected(item, error)
            if result is not None:
                results.append(result)
    return results
