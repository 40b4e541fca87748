"""Dead-letter messages: the original key and value bytes, unchanged, with the reason in headers.

Header names follow the `dlq.*` convention: a re-drive tool or a person reading the topic can tell
where the message came from and why it was rejected without decoding it.
"""

from __future__ import annotations

import logging
import time

from faust.types import EventT, TopicT

from pipeline import metrics

log = logging.getLogger(__name__)

# At most one log line per (topic, reason) this often; the counter still counts every message.
_LOG_INTERVAL_S = 10.0
_last_logged: dict[tuple[str, str], float] = {}


def dead_letter_headers(
    event: EventT, reason: str, error: Exception, stage: str
) -> dict[str, bytes]:
    """Return the headers describing why and where a message was rejected."""
    message = event.message
    return {
        "dlq.original.topic": message.topic.encode(),
        "dlq.original.partition": str(message.partition).encode(),
        "dlq.original.offset": str(message.offset).encode(),
        "dlq.original.timestamp": str(int(message.timestamp * 1000)).encode(),
        "dlq.reason": reason.encode(),
        "dlq.stage": stage.encode(),
        "dlq.error.class": type(error).__name__.encode(),
        "dlq.error.message": str(error)[:1000].encode("utf-8", "replace"),
    }


async def send_to_dead_letter(
    dlq_topic: TopicT, event: EventT, reason: str, error: Exception, stage: str = "decode"
) -> None:
    """Copy the event's message to the dead-letter topic and wait until Kafka has it."""
    message = event.message
    headers = dead_letter_headers(event, reason, error, stage)
    pending = await dlq_topic.send(key=message.key, value=message.value, headers=headers)
    await pending
    metrics.MESSAGES_DEAD_LETTERED.labels(topic=message.topic, reason=reason).inc()

    now = time.monotonic()
    log_key = (message.topic, reason)
    if now - _last_logged.get(log_key, 0.0) >= _LOG_INTERVAL_S:
        _last_logged[log_key] = now
        log.warning(
            "dead-lettered message topic=%s partition=%s offset=%s reason=%s error=%s",
            message.topic, message.partition, message.offset, reason, error,
        )
