"""Per-client send queue with a byte bound: producers wait while the client has not drained."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


class SenderClosed(Exception):
    """The connection is gone; nothing more can be sent."""


class BoundedSender:
    """Queues text and binary messages for one client and sends them in order from one task.

    `send` waits while more than `max_queued_bytes` are queued and not yet written, so a slow
    viewer slows its own playback instead of growing server memory. A single message larger
    than the bound is still sent, alone, once the queue is empty.
    """

    def __init__(
        self,
        send_text: Callable[[str], Awaitable[None]],
        send_bytes: Callable[[bytes], Awaitable[None]],
        max_queued_bytes: int,
        on_sent: Callable[[int, bool], None] | None = None,
    ) -> None:
        if max_queued_bytes <= 0:
            raise ValueError(f"max_queued_bytes={max_queued_bytes} must be positive")
        self._send_text = send_text
        self._send_bytes = send_bytes
        self.max_queued_bytes = max_queued_bytes
        self._on_sent = on_sent
        self._queue: deque[str | bytes] = deque()
        self.queued_bytes = 0
        self.peak_queued_bytes = 0
        self._changed = asyncio.Condition()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="replay-sender")

    async def send(self, message: str | bytes) -> None:
        """Queue one message, waiting first until it fits under the byte bound."""
        size = len(message)
        async with self._changed:
            await self._changed.wait_for(
                lambda: self._closed or self.queued_bytes == 0 or self.queued_bytes + size <= self.max_queued_bytes
            )
            if self._closed:
                raise SenderClosed("connection closed") from self.error
            self._queue.append(message)
            self.queued_bytes += size
            self.peak_queued_bytes = max(self.peak_queued_bytes, self.queued_bytes)
            self._changed.notify_all()

    async def close(self) -> None:
        async with self._changed:
            self._closed = True
            self._changed.notify_all()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    async def _run(self) -> None:
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: self._closed or bool(self._queue))
                if self._closed:
                    return
                message = self._queue[0]
            try:
                # The websocket send returns once the transport accepted the bytes; uvicorn's
                # websockets implementation waits for the socket to drain above its high-water mark.
                if isinstance(message, bytes):
                    await self._send_bytes(message)
                else:
                    await self._send_text(message)
            except Exception as error:  # the client went away mid-send
                logger.info("replay send failed, closing the sender: error=%s", error)
                async with self._changed:
                    self.error = error
                    self._closed = True
                    self._changed.notify_all()
                return
            async with self._changed:
                self._queue.popleft()
                self.queued_bytes -= len(message)
                self._changed.notify_all()
            if self._on_sent is not None:
                self._on_sent(len(message), isinstance(message, bytes))
