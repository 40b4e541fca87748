"""Consumer lag per partition: the partition's end offset minus the next offset this worker stores."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from pipeline import metrics

LAG_REPORT_INTERVAL_S = 5.0


class _Positioned(Protocol):
    partition: int
    offset: int


class LagTracker:
    """Remembers the next offset stored per partition and publishes the lag gauge."""

    def __init__(self, topic: str) -> None:
        self._topic = topic
        self._next_offsets: dict[int, int] = {}

    def stored(self, records: Iterable[_Positioned]) -> None:
        for record in records:
            if record.offset + 1 > self._next_offsets.get(record.partition, -1):
                self._next_offsets[record.partition] = record.offset + 1

    def report(self, consumer) -> None:  # noqa: ANN001 - faust's Consumer
        for tp in consumer.assignment():
            if tp.topic != self._topic:
                continue
            # aiokafka's highwater is the offset the next produced message will get.
            highwater = consumer.highwater(tp)
            next_offset = self._next_offsets.get(tp.partition)
            if highwater is None or next_offset is None:
                continue
            metrics.CONSUMER_LAG.labels(topic=self._topic, partition=str(tp.partition)).set(
                max(0, highwater - next_offset)
            )
