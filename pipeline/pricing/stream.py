"""The price book that running workers use, fed by the compacted prices topic.

`attach_price_table` starts a thread that reads every partition of the prices topic from the
first offset with a plain Kafka consumer (no consumer group, nothing
committed) and keeps reading it, so every worker receives every price record, including the ones
published while it runs. Workers never write the topic: `spanline prices sync|set|delete` do.

NOTE: a faust GlobalTable with the prices topic as its changelog was tried first. With
faust-streaming 0.15.3 the group leader never finished the partition assignment (the log stops
at "performing partition assignments" while the 1-partition prices topic sits beside the
4-partition spans topic), so no agent ever ran. The reader thread needs no group, no
co-partitioning and no table recovery.

Each record goes into a `PriceBookSource`, which keeps the decoded entries and a version number.
`PriceBookSource.book()` compares that number with the one of the book it built last, so a batch
pays one integer comparison while prices do not change.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from pipeline.config import Settings
from pipeline.kafka_clients import librdkafka_config
from pipeline.pricing.prices import ModelAlias, OperatorPrices, PriceBook, PriceEntry, load_operator_prices
from pipeline.pricing.topic import OPERATOR_PREFIX, DecodedRecord, PriceTopicError, decode_record, read_all

logger = logging.getLogger(__name__)

# A burst of records (a sync publishes a few thousand) would otherwise rebuild the book once per
# batch while it arrives, and every rebuild drops the resolved timelines.
MIN_REBUILD_INTERVAL_S = 1.0
# How long the first book() call waits for the reader to reach the end of the topic. Pricing
# before that would use the fallback prices for the first batches after a start.
CATCH_UP_TIMEOUT_S = 60.0
POLL_TIMEOUT_S = 0.5


class PriceBookSource:
    """The latest price records and a PriceBook built from them on demand.

    Layers fall back one by one: with no genai-prices records the packaged genai-prices data is
    used, and with no operator records (entries or aliases) `settings.prices_file` is used.
    `apply` may run in another thread than `book`.
    """

    def __init__(self, settings: Settings, min_rebuild_interval_s: float = MIN_REBUILD_INTERVAL_S) -> None:
        self._settings = settings
        self._min_rebuild_interval_s = min_rebuild_interval_s
        self._lock = threading.Lock()
        self._genai: dict[str, PriceEntry] = {}
        self._operator: dict[str, PriceEntry] = {}
        self._aliases: dict[str, ModelAlias] = {}
        self._version = 0
        self._built_version = -1
        self._built_at = float("-inf")
        self._book: PriceBook | None = None
        self._fallback_operator: OperatorPrices | None = None
        self.caught_up = threading.Event()
        # Only a running reader can set caught_up; without one, book() must not wait for it.
        self.reader_started = False
        self.records_invalid = 0

    @property
    def version(self) -> int:
        """The number of records applied so far; it changes whenever the prices may have changed."""
        return self._version

    def apply(self, key: bytes | str | None, value: bytes | None) -> None:
        """Apply one topic record (a None value deletes the key); log and skip invalid records."""
        try:
            record = decode_record(key, value)
        except ValueError as error:
            self.records_invalid += 1
            logger.warning("skipped invalid prices record error=%s", error)
            return
        with self._lock:
            self._store(record)
            self._version += 1

    def _store(self, record: DecodedRecord) -> None:
        for layer in (self._genai, self._operator, self._aliases):
            layer.pop(record.key, None)
        if record.alias is not None:
            self._aliases[record.key] = record.alias
        elif record.entry is not None:
            target = self._operator if record.key.startswith(OPERATOR_PREFIX) else self._genai
            target[record.key] = record.entry

    def book(self) -> PriceBook:
        """Return a PriceBook of the latest records, rebuilt only when a record arrived since.

        Rebuilds happen at most once per `min_rebuild_interval_s`, so a price change reaches the
        book within that interval after its record arrived. The first call waits up to
        CATCH_UP_TIMEOUT_S for the reader to reach the end of the topic.
        """
        book = self._book
        if self._built_version == self._version and book is not None:
            return book
        now = time.monotonic()
        if book is not None and now - self._built_at < self._min_rebuild_interval_s:
            return book
        # NOTE: this wait blocks the caller's event loop, but only before the first book, while
        # the reader thread reads the topic (well under a second for a few thousand records).
        if book is None and self.reader_started and not self.caught_up.wait(CATCH_UP_TIMEOUT_S):
            logger.warning(
                "prices topic not read to its end within %.0f s; pricing with the records read so far "
                "topic=%s records=%d", CATCH_UP_TIMEOUT_S, self._settings.prices_topic, self._version,
            )
        with self._lock:
            version = self._version
            genai = list(self._genai.values())
            operator = [self._operator[key] for key in sorted(self._operator)]
            aliases = [self._aliases[key] for key in sorted(self._aliases)]
        book = self._build(genai, operator, aliases, version)
        self._book, self._built_version, self._built_at = book, version, now
        return book

    def _build(
        self, genai: list[PriceEntry], operator: list[PriceEntry], aliases: list[ModelAlias], version: int
    ) -> PriceBook:
        if not genai:
            logger.info("prices topic has no genai-prices records; using the packaged genai-prices data")
        if operator or aliases:
            operator_prices: OperatorPrices | None = OperatorPrices(entries=tuple(operator), aliases=tuple(aliases))
        else:
            operator_prices = self._operator_file()
        logger.info(
            "built price book version=%d genai_records=%d operator_records=%d alias_records=%d",
            version, len(genai), len(operator), len(aliases),
        )
        return PriceBook(operator_prices, genai_entries=genai or None)

    def _operator_file(self) -> OperatorPrices | None:
        path = self._settings.prices_file
        if path is None:
            return None
        if self._fallback_operator is None:
            logger.info("prices topic has no operator records; using prices_file=%s", path)
            self._fallback_operator = load_operator_prices(path)
        return self._fallback_operator


def load_price_book_source(settings: Settings) -> PriceBookSource:
    """Read the prices topic to its end once and return the source (for CLIs such as reprice).

    Raises pipeline.pricing.topic.PriceTopicError when the topic cannot be read.
    """
    source = PriceBookSource(settings, min_rebuild_interval_s=0.0)
    for key, value in read_all(settings):
        source.apply(key, value)
    source.caught_up.set()
    logger.info("read prices topic topic=%s records=%d", settings.prices_topic, source.version)
    return source


class PriceTopicReader(threading.Thread):
    """A daemon thread that feeds every record of the prices topic into a PriceBookSource."""

    def __init__(self, settings: Settings, source: PriceBookSource) -> None:
        super().__init__(name="price-topic-reader", daemon=True)
        self._settings = settings
        self._source = source
        self._stop_requested = threading.Event()

    def stop(self) -> None:
        self._stop_requested.set()

    def run(self) -> None:
        while not self._stop_requested.is_set():
            try:
                self._follow()
            except Exception:  # the reader must outlive broker restarts; it logs and retries
                logger.exception("prices topic reader failed; retrying in 5 s topic=%s", self._settings.prices_topic)
                self._stop_requested.wait(5.0)

    def _follow(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        topic = self._settings.prices_topic
        consumer = Consumer({
            **librdkafka_config(self._settings),
            # Required by librdkafka even though partitions are assigned by hand and nothing is
            # committed.
            "group.id": "spanline-prices-reader",
            "enable.auto.commit": False,
        })
        try:
            metadata = consumer.list_topics(topic, timeout=30)
            partitions = sorted(metadata.topics[topic].partitions) if topic in metadata.topics else []
            if not partitions or metadata.topics[topic].error is not None:
                raise PriceTopicError(f"topic {topic} does not exist; create it with `spanline stack up`")
            ends = {}
            for partition in partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
                ends[partition] = high
            # A reconnect reads the topic again from the start; applying a record twice is harmless.
            consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in partitions])
            pending = {partition for partition, high in ends.items() if high > 0}
            if not pending:
                self._mark_caught_up()
            while not self._stop_requested.is_set():
                message = consumer.poll(POLL_TIMEOUT_S)
                if message is None:
                    continue
                if message.error() is not None:
                    logger.warning("prices topic read error topic=%s error=%s", topic, message.error())
                    continue
                self._source.apply(message.key(), message.value())
                if pending and message.offset() + 1 >= ends[message.partition()]:
                    pending.discard(message.partition())
                    if not pending:
                        self._mark_caught_up()
        finally:
            consumer.close()

    def _mark_caught_up(self) -> None:
        if not self._source.caught_up.is_set():
            logger.info(
                "prices topic read to its end topic=%s records=%d", self._settings.prices_topic,
                self._source.version,
            )
            self._source.caught_up.set()


def attach_price_table(app: Any, settings: Settings) -> PriceBookSource:
    """Start the prices topic reader thread and return the PriceBookSource it keeps current.

    Call once per worker process, before the app starts; price each batch with `source.book()`.
    The reader starts here, not in a faust task, because faust runs tasks only once the worker is
    ready, after agents and web pages may already have asked for a book.
    """
    source = PriceBookSource(settings)
    reader = PriceTopicReader(settings, source)
    reader.start()
    source.reader_started = True
    logger.info("started prices topic reader topic=%s app=%s", settings.prices_topic, app.conf.id)
    return source
