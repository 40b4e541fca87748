"""An in-memory stand-in for confluent_kafka.Producer, for tests that record real browser runs."""

from __future__ import annotations

from typing import Any


class RecordingProducer:
    """Stands in for confluent_kafka.Producer: keeps every message and reports it delivered."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes | None, bytes]] = []
        self._callbacks: list[Any] = []

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None, **kwargs: Any) -> None:
        self.messages.append((topic, key, value))
        callback = kwargs.get("on_delivery") or kwargs.get("callback")
        if callback is not None:
            self._callbacks.append(callback)

    def poll(self, timeout: float = 0) -> int:
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(None, None)
        return len(callbacks)

    def flush(self, timeout: float = 0) -> int:
        self.poll()
        return 0
