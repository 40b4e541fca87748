"""Price records on the compacted prices topic: key scheme, JSON values, publishing and reading.

Every record is one price entry or one deployment alias, so compaction keeps the latest value per
key and a consumer that reads the topic from the start sees every entry in force. Keys:

    genai-prices/<provider>/<model>@<effective_from>[<HH:MM-HH:MM>]   genai-prices entries
    operator/<provider or *>/<model>@<effective_from>[<HH:MM-HH:MM>]   operator entries
    alias/<provider or *>/<deployment>                                   deployment aliases

`effective_from` is ISO-8601 UTC with a `Z` (`1970-01-01T00:00:00Z` for "always"), so each dated
entry of one model has its own key. The origin prefix keeps an operator entry and a genai-prices
entry for the same model and date apart: operator precedence is decided when the book is built,
never by one record overwriting the other. Keys are identifiers only: model names contain `/`
and `@`, so readers take every field from the value.

Values are UTF-8 JSON: `PriceEntry.to_dict()` for prices, `{provider, deployment, model,
to_provider}` for aliases. A null value (tombstone) deletes the key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pipeline.config import Settings
from pipeline.kafka_clients import librdkafka_config
from pipeline.pricing.prices import ModelAlias, OperatorPrices, PriceEntry

logger = logging.getLogger(__name__)

GENAI_PREFIX = "genai-prices/"
OPERATOR_PREFIX = "operator/"
ALIAS_PREFIX = "alias/"
KEY_PREFIXES = (GENAI_PREFIX, OPERATOR_PREFIX, ALIAS_PREFIX)

DELIVERY_TIMEOUT_S = 60.0
READ_TIMEOUT_S = 30.0


class PriceTopicError(RuntimeError):
    """Publishing to or reading the prices topic failed; the message names the topic and cause."""


def entry_key(entry: PriceEntry) -> str:
    """Return the topic key of a price entry (see the module docstring for the scheme)."""
    origin = OPERATOR_PREFIX if entry.id.startswith("operator:") else GENAI_PREFIX
    effective = entry.effective_from.isoformat().replace("+00:00", "Z")
    window = f"[{entry.utc_time_window[0]}-{entry.utc_time_window[1]}]" if entry.utc_time_window else ""
    return f"{origin}{entry.provider}/{entry.model}@{effective}{window}"


def alias_key(alias: ModelAlias) -> str:
    """Return the topic key of a deployment alias."""
    return f"{ALIAS_PREFIX}{alias.provider or '*'}/{alias.deployment}"


def encode_entry(entry: PriceEntry) -> bytes:
    return json.dumps(entry.to_dict(), separators=(",", ":"), sort_keys=True).encode()


def encode_alias(alias: ModelAlias) -> bytes:
    value = {
        "provider": alias.provider,
        "deployment": alias.deployment,
        "model": alias.model,
        "to_provider": alias.to_provider,
    }
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def genai_records(entries: Iterable[PriceEntry]) -> list[tuple[str, bytes]]:
    """Return (key, value) records for genai-prices entries."""
    return [(entry_key(entry), encode_entry(entry)) for entry in entries]


def operator_records(operator: OperatorPrices) -> list[tuple[str, bytes]]:
    """Return (key, value) records for an operator file's entries and aliases."""
    records = [(entry_key(entry), encode_entry(entry)) for entry in operator.entries]
    records.extend((alias_key(alias), encode_alias(alias)) for alias in operator.aliases)
    keys = [key for key, _ in records]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(
            f"operator prices define the same key twice: {duplicates}; keep one entry per "
            "provider, model and effective_from"
        )
    return records


@dataclass(frozen=True)
class DecodedRecord:
    """One prices-topic record: an entry, an alias, or a deletion (both None)."""

    key: str
    entry: PriceEntry | None = None
    alias: ModelAlias | None = None


def decode_record(key: bytes | str | None, value: bytes | None) -> DecodedRecord:
    """Decode one record; raise ValueError naming the key when the key or value is invalid."""
    if key is None:
        raise ValueError("prices record without a key; keys look like operator/<provider>/<model>@<time>")
    text_key = key.decode() if isinstance(key, bytes) else key
    if not text_key.startswith(KEY_PREFIXES):
        raise ValueError(
            f"prices record key {text_key!r} has no known prefix; expected one of {', '.join(KEY_PREFIXES)}"
        )
    if value is None:
        return DecodedRecord(key=text_key)
    try:
        data = json.loads(value)
        if text_key.startswith(ALIAS_PREFIX):
            alias = ModelAlias(
                deployment=data["deployment"],
                model=data["model"],
                provider=data.get("provider"),
                to_provider=data.get("to_provider"),
            )
            return DecodedRecord(key=text_key, alias=alias)
        return DecodedRecord(key=text_key, entry=PriceEntry.from_dict(data))
    except (ValueError, KeyError, TypeError, ArithmeticError) as error:
        raise ValueError(f"prices record {text_key!r} has an invalid value: {error!r}") from None


def publish(settings: Settings, records: Iterable[tuple[str, bytes | None]]) -> int:
    """Produce records to the prices topic and wait for every delivery; return the count.

    A None value is a tombstone. Raises PriceTopicError naming the first failed key.
    """
    from confluent_kafka import Producer

    producer = Producer({
        **librdkafka_config(settings),
        "enable.idempotence": True,
        "linger.ms": 20,
        "message.timeout.ms": int(DELIVERY_TIMEOUT_S * 1000),
    })
    failures: list[str] = []
    delivered = 0

    def on_delivery(error, message) -> None:  # noqa: ANN001 - confluent_kafka callback
        nonlocal delivered
        if error is not None:
            failures.append(f"{message.key().decode()}: {error}")
        else:
            delivered += 1

    sent = 0
    for key, value in records:
        while True:
            try:
                producer.produce(settings.prices_topic, key=key.encode(), value=value, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.5)
        sent += 1
        producer.poll(0)
    remaining = producer.flush(DELIVERY_TIMEOUT_S)
    if remaining:
        raise PriceTopicError(
            f"{remaining} of {sent} price records were not delivered to {settings.prices_topic} at "
            f"{settings.kafka_bootstrap} within {DELIVERY_TIMEOUT_S:.0f} s; is Kafka running "
            "(`spanline stack status`)?"
        )
    if failures:
        raise PriceTopicError(
            f"{len(failures)} of {sent} price records failed on {settings.prices_topic}; first: {failures[0]}"
        )
    logger.info("published price records topic=%s count=%d", settings.prices_topic, delivered)
    return delivered


def read_all(settings: Settings, timeout_s: float = READ_TIMEOUT_S) -> Iterator[tuple[bytes | None, bytes | None]]:
    """Yield every (key, value) on the prices topic from the first offset to the current end.

    Reads without a consumer group (nothing is committed). Raises PriceTopicError when the topic
    does not exist or the end is not reached within timeout_s.
    """
    import time

    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

    consumer = Consumer({
        **librdkafka_config(settings),
        "group.id": "spanline-prices-reader",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })
    try:
        try:
            metadata = consumer.list_topics(settings.prices_topic, timeout=timeout_s)
        except KafkaException as error:
            raise PriceTopicError(
                f"cannot read topic {settings.prices_topic} at {settings.kafka_bootstrap}: {error}; "
                "is Kafka running (`spanline stack status`)?"
            ) from None
        topic = metadata.topics.get(settings.prices_topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise PriceTopicError(
                f"topic {settings.prices_topic} does not exist at {settings.kafka_bootstrap}; "
                "create it with `spanline stack up`"
            )
        ends = {}
        for partition in topic.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(settings.prices_topic, partition), timeout=timeout_s
            )
            if high > low:
                ends[partition] = high
        if not ends:
            return
        consumer.assign([
            TopicPartition(settings.prices_topic, partition, OFFSET_BEGINNING) for partition in ends
        ])
        deadline = time.monotonic() + timeout_s
        while ends:
            if time.monotonic() > deadline:
                raise PriceTopicError(
                    f"reading {settings.prices_topic} did not reach the end within {timeout_s:.0f} s"
                )
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error() is not None:
                if message.error().code() == message.error()._PARTITION_EOF:
                    ends.pop(message.partition(), None)
                    continue
                raise PriceTopicError(f"reading {settings.prices_topic} failed: {message.error()}")
            yield message.key(), message.value()
            if message.offset() + 1 >= ends.get(message.partition(), 0):
                ends.pop(message.partition(), None)
    finally:
        consumer.close()
