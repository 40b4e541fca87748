"""Pre-encoded span batches and the producer processes that offer them to Kafka.

Encoding 100,000+ spans/s with fastavro would cost the generator a good part of a core, so each
producer encodes a pool of batch templates once, before the measurement. At produce time a
template is copied and patched in place with numpy: the 12-hex prefix of every span id (and of
the parent ids that point into the same batch) and every start/end timestamp. Both have a fixed
encoded length (a 16-character string; a 9-byte zig-zag varint for any time after 1971), so the
patched bytes are a valid batch whose spans are unique and ended "now".
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import multiprocessing.synchronize
import queue
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from load.shapes import TrafficShape
from pipeline.wire.spans import decode_span_batch, encode_span_batch

logger = logging.getLogger(__name__)

SPAN_ID_PREFIX_CHARS = 12
SPAN_ID_SUFFIX_CHARS = 4
TIME_VARINT_BYTES = 9
# Any nanosecond time after 1971-02 has a zig-zag value of 2**56 or more, so it encodes to 9 bytes.
_MIN_NINE_BYTE_NS = 2**55
_VARINT_SHIFTS = np.arange(0, 63, 7, dtype=np.uint64)


@dataclass
class BatchTemplate:
    """One encoded batch of one run, with the byte positions that are patched per produce."""

    run_id: str
    key: bytes
    size: int
    payload: bytes
    # (spans * 2, 9) byte indexes of the start_ns then end_ns varints.
    time_index: np.ndarray
    # Nanoseconds relative to the produce time: 0 for end_ns, minus the duration for start_ns.
    time_offsets_ns: np.ndarray
    # (ids, 12) byte indexes of the span-id prefixes (span and parent ids).
    id_index: np.ndarray

    def render(self, now_ns: int, id_prefix: bytes) -> bytes:
        """Return the batch with every span ending at now_ns and span ids starting with id_prefix."""
        buffer = bytearray(self.payload)
        view = np.frombuffer(buffer, dtype=np.uint8)
        view[self.time_index] = _nine_byte_varints(now_ns + self.time_offsets_ns)
        view[self.id_index] = np.frombuffer(id_prefix, dtype=np.uint8)
        return bytes(buffer)


def _nine_byte_varints(values_ns: np.ndarray) -> np.ndarray:
    """Encode non-negative nanosecond times as Avro zig-zag varints of exactly 9 bytes each."""
    zigzag = values_ns.astype(np.uint64) << np.uint64(1)
    groups = (zigzag[:, None] >> _VARINT_SHIFTS[None, :]) & np.uint64(0x7F)
    groups[:, :8] |= np.uint64(0x80)
    groups[:, 8] = zigzag >> np.uint64(56)
    return groups.astype(np.uint8)


class WordText:
    """Pseudo-prose from a fixed vocabulary: compresses like text, unlike one repeated byte."""

    def __init__(self, rng: random.Random, size: int = 1 << 16) -> None:
        letters = "abcdefghijklmnopqrstuvwxyz"
        vocabulary = [
            "".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(1500)
        ]
        words = []
        length = 0
        while length < size:
            word = rng.choice(vocabulary)
            words.append(word)
            length += len(word) + 1
        self._text = " ".join(words)
        self._rng = rng

    def take(self, chars: int) -> str:
        chars = max(0, min(chars, len(self._text)))
        start = self._rng.randrange(0, len(self._text) - chars + 1)
        return self._text[start : start + chars]


def build_columns(
    shape: TrafficShape, size: int, trace_id: str, rng: random.Random, text: WordText,
    base_ns: int,
) -> dict[str, list[Any]]:
    """Draw the columns of one batch of `size` spans from the shape, timed around base_ns.

    Span ids are 12 zero characters plus a 4-hex index; span 0 is an agent span and the parent
    of the rest, as a run's root span is.
    """
    kinds = rng.choices(list(shape.kind_weights), weights=list(shape.kind_weights.values()), k=size)
    kinds[0] = "agent"
    models = list(shape.model_weights)
    model_weights = list(shape.model_weights.values())
    zero_prefix = "0" * SPAN_ID_PREFIX_CHARS
    span_ids = [f"{zero_prefix}{index:04x}" for index in range(size)]
    columns: dict[str, list[Any]] = {name: [] for name in (
        "trace_id", "span_id", "parent_span_id", "step", "kind", "name", "start_ns", "end_ns",
        "status", "error_message", "provider", "model", "input_tokens", "cache_read_tokens",
        "output_tokens", "reasoning_tokens", "usage_source", "tool_name", "tool_args", "attributes",
    )}
    for index, kind in enumerate(kinds):
        durations = shape.duration_ms.get(kind) or (100.0,)
        duration_ns = int(rng.choice(durations) * 1e6)
        failed = rng.random() < 0.02
        columns["trace_id"].append(trace_id)
        columns["span_id"].append(span_ids[index])
        columns["parent_span_id"].append("" if index == 0 else span_ids[0])
        columns["step"].append(index + 1)
        columns["kind"].append(kind)
        columns["name"].append(f"{kind} step")
        columns["start_ns"].append(base_ns - duration_ns)
        columns["end_ns"].append(base_ns)
        columns["status"].append("error" if failed else "ok")
        columns["error_message"].append("load: simulated failure" if failed else None)
        provider = model = usage_source = tool_name = tool_args = None
        tokens: tuple[int | None, ...] = (None, None, None, None)
        if kind == "llm":
            provider, model = rng.choices(models, weights=model_weights)[0]
            tokens = rng.choice(shape.llm_tokens)
            usage_source = "openai.chat" if provider == "openai" else "otel.gen_ai"
        elif kind == "tool":
            tool_name = "search"
            tool_args = '{"query": "' + text.take(rng.randint(10, 80)) + '"}'
        for column, value in zip(
            ("input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens"), tokens
        ):
            columns[column].append(value)
        columns["provider"].append(provider)
        columns["model"].append(model)
        columns["usage_source"].append(usage_source)
        columns["tool_name"].append(tool_name)
        columns["tool_args"].append(tool_args)
        columns["attributes"].append(_attributes(rng.choice(shape.attribute_bytes), kind, text))
    return columns


def _attributes(target_bytes: int, kind: str, text: WordText) -> str:
    head = '{"load.kind":"' + kind + '","load.text":"'
    return head + text.take(target_bytes - len(head) - 2) + '"}'


def build_template(
    shape: TrafficShape, run_id: str, size: int, rng: random.Random, text: WordText
) -> BatchTemplate:
    """Encode one batch and locate its span-id prefixes and timestamps by encoding a variant.

    The variant differs only in the id prefix characters and by 1 ns in every time, so the
    differing bytes are exactly the patch positions. The template is then rendered once and
    decoded to prove that patching yields the intended spans.
    """
    trace_id = f"{rng.getrandbits(128):032x}"
    base_ns = time.time_ns()
    if base_ns < _MIN_NINE_BYTE_NS:
        raise RuntimeError(f"clock reads {base_ns} ns since the epoch; patching needs a time after 1971")
    columns = build_columns(shape, size, trace_id, rng, text, base_ns)
    payload = encode_span_batch(run_id, "load-agent", columns)

    varied_ids = {
        "span_id": [f"{'1' * SPAN_ID_PREFIX_CHARS}{value[SPAN_ID_PREFIX_CHARS:]}"
                    for value in columns["span_id"]],
        "parent_span_id": [f"{'1' * SPAN_ID_PREFIX_CHARS}{value[SPAN_ID_PREFIX_CHARS:]}" if value else ""
                           for value in columns["parent_span_id"]],
    }
    id_payload = encode_span_batch(run_id, "load-agent", {**columns, **varied_ids})
    plus_one = {name: [value + 1 for value in columns[name]] for name in ("start_ns", "end_ns")}
    time_payload = encode_span_batch(run_id, "load-agent", {**columns, **plus_one})
    if len(id_payload) != len(payload) or len(time_payload) != len(payload):
        raise RuntimeError(f"template variants of run {run_id} changed length; cannot patch")

    original = np.frombuffer(payload, dtype=np.uint8)
    id_positions = np.flatnonzero(original != np.frombuffer(id_payload, dtype=np.uint8))
    id_index = id_positions.reshape(-1, SPAN_ID_PREFIX_CHARS)

    time_diff = np.flatnonzero(original != np.frombuffer(time_payload, dtype=np.uint8))
    # A +1 ns change always alters a varint's first byte; the arrays are contiguous 9-byte items.
    start_first = int(time_diff[0])
    start_positions = start_first + TIME_VARINT_BYTES * np.arange(size)
    end_first = int(time_diff[time_diff >= start_positions[-1] + TIME_VARINT_BYTES][0])
    end_positions = end_first + TIME_VARINT_BYTES * np.arange(size)
    firsts = np.concatenate([start_positions, end_positions])
    time_index = firsts[:, None] + np.arange(TIME_VARINT_BYTES)[None, :]
    offsets = np.array(
        [start - base_ns for start in columns["start_ns"]] + [0] * size, dtype=np.int64
    )
    template = BatchTemplate(
        run_id=run_id, key=run_id.encode(), size=size, payload=payload,
        time_index=time_index, time_offsets_ns=offsets, id_index=id_index,
    )
    _check_template(template, columns)
    return template


def _check_template(template: BatchTemplate, columns: dict[str, list[Any]]) -> None:
    now_ns = time.time_ns() + 123_456_789
    prefix = b"abcdef012345"
    batch = decode_span_batch(template.render(now_ns, prefix))
    expected_ids = [prefix.decode() + value[SPAN_ID_PREFIX_CHARS:] for value in columns["span_id"]]
    if (
        batch.columns["span_id"] != expected_ids
        or batch.columns["end_ns"] != [now_ns] * template.size
        or batch.columns["start_ns"][-1] != now_ns + int(template.time_offsets_ns[template.size - 1])
        or batch.columns["attributes"] != columns["attributes"]
    ):
        raise RuntimeError(f"patched template of run {template.run_id} does not decode as intended")


def build_templates(
    shape: TrafficShape, run_prefix: str, producer_index: int, runs: int,
    min_spans: int, max_spans: int, seed: int,
) -> list[BatchTemplate]:
    """Build one template per concurrent run, with run ids unique to this producer."""
    rng = random.Random(seed * 1000 + producer_index)
    text = WordText(rng)
    return [
        build_template(
            shape, f"{run_prefix}-{producer_index:02x}-{run:05d}",
            rng.randint(min_spans, max_spans), rng, text,
        )
        for run in range(runs)
    ]


@dataclass
class ProducerConfig:
    """What one producer process offers, and how."""

    bootstrap: str
    topic: str
    run_prefix: str
    producer_index: int
    shape: TrafficShape
    # Spans per second this process offers; 0 offers as many as it can.
    rate: float
    runs: int = 64
    min_spans: int = 100
    max_spans: int = 500
    compression: str = "zstd"
    linger_ms: int = 50
    seed: int = 1
    kafka_config: dict[str, str] = field(default_factory=dict)


@dataclass
class ProducerResult:
    """Spans each run had delivered (acknowledged by the broker), and what failed."""

    producer_index: int
    delivered_by_run: dict[str, int]
    delivered_spans: int
    delivered_messages: int
    failed_messages: int
    # Spans delivered per whole second since the start, as (unix second, spans).
    delivered_per_second: list[tuple[int, int]]
    template_bytes: int
    encode_seconds: float


@dataclass
class ProducerControl:
    """Shared flags and counters between the harness and its producer processes."""

    ready: Any
    start: multiprocessing.synchronize.Event
    stop: multiprocessing.synchronize.Event
    pause: multiprocessing.synchronize.Event
    delivered_spans: Any
    results: Any

    @classmethod
    def create(cls, context: Any, producers: int) -> "ProducerControl":
        return cls(
            ready=context.Semaphore(0),
            start=context.Event(),
            stop=context.Event(),
            pause=context.Event(),
            delivered_spans=context.Array("q", producers),
            results=context.Queue(),
        )


def producer_main(config: ProducerConfig, control: ProducerControl) -> None:
    """Build templates, wait for the start signal, then produce until the stop signal."""
    from confluent_kafka import KafkaError, Producer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    started = time.perf_counter()
    templates = build_templates(
        config.shape, config.run_prefix, config.producer_index, config.runs,
        config.min_spans, config.max_spans, config.seed,
    )
    encode_seconds = time.perf_counter() - started
    producer = Producer({
        "bootstrap.servers": config.bootstrap,
        "linger.ms": config.linger_ms,
        "compression.type": config.compression,
        "batch.size": 8 * 1024 * 1024,
        "message.max.bytes": 16 * 1024 * 1024,
        "queue.buffering.max.kbytes": 256 * 1024,
        "acks": "all",
        "enable.idempotence": True,
        **config.kafka_config,
    })
    delivered_by_run: Counter[str] = Counter()
    per_second: Counter[int] = Counter()
    totals = {"spans": 0, "messages": 0, "failed": 0}
    counter_slot = control.delivered_spans
    slot = config.producer_index

    def on_delivery(error: KafkaError | None, message: Any, run_id: str, size: int) -> None:
        if error is not None:
            totals["failed"] += 1
            logger.error("delivery failed run_id=%s spans=%d error=%s", run_id, size, error)
            return
        delivered_by_run[run_id] += size
        per_second[int(time.time())] += size
        totals["spans"] += size
        totals["messages"] += 1
        counter_slot[slot] = totals["spans"]

    control.ready.release()
    control.start.wait()
    begin = time.monotonic()
    offered = 0
    sequence = 0
    order = list(range(len(templates)))
    rng = random.Random(config.producer_index)
    while not control.stop.is_set():
        if control.pause.is_set():
            producer.poll(0.05)
            continue
        if config.rate > 0:
            ahead_s = offered / config.rate - (time.monotonic() - begin)
            if ahead_s > 0:
                producer.poll(min(ahead_s, 0.01))
                continue
        if sequence % len(order) == 0:
            rng.shuffle(order)
        template = templates[order[sequence % len(order)]]
        prefix = f"{config.producer_index:02x}{sequence:010x}".encode()
        value = template.render(time.time_ns(), prefix)
        while True:
            try:
                producer.produce(
                    config.topic, value, template.key,
                    on_delivery=lambda error, message, run_id=template.run_id, size=template.size:
                        on_delivery(error, message, run_id, size),
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        sequence += 1
        offered += template.size
    remaining = producer.flush(60)
    if remaining:
        logger.error("producer %d could not deliver %d messages within 60 s",
                     config.producer_index, remaining)
    control.results.put(ProducerResult(
        producer_index=config.producer_index,
        delivered_by_run=dict(delivered_by_run),
        delivered_spans=totals["spans"],
        delivered_messages=totals["messages"],
        failed_messages=totals["failed"] + remaining,
        delivered_per_second=sorted(per_second.items()),
        template_bytes=sum(len(template.payload) for template in templates),
        encode_seconds=encode_seconds,
    ))


class Generator:
    """A group of producer processes that offer load together."""

    def __init__(self, configs: list[ProducerConfig]) -> None:
        self._context = mp.get_context("spawn")
        self.control = ProducerControl.create(self._context, len(configs))
        self._processes = [
            self._context.Process(target=producer_main, args=(config, self.control),
                                  name=f"load-producer-{config.producer_index}", daemon=True)
            for config in configs
        ]

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self._processes if process.pid is not None]

    def prepare(self, timeout_s: float = 180.0) -> None:
        """Start the processes and wait until each has built its templates."""
        for process in self._processes:
            process.start()
        deadline = time.monotonic() + timeout_s
        for process in self._processes:
            if not self.control.ready.acquire(timeout=max(0.1, deadline - time.monotonic())):
                raise TimeoutError(
                    f"producer processes did not build their templates within {timeout_s:.0f} s"
                )

    def start(self) -> None:
        self.control.start.set()

    def delivered_spans(self) -> int:
        return sum(self.control.delivered_spans[:])

    def stop(self, timeout_s: float = 90.0) -> list[ProducerResult]:
        """Stop producing, wait for every queued message's delivery report, collect results."""
        self.control.stop.set()
        self.control.start.set()
        results: list[ProducerResult] = []
        deadline = time.monotonic() + timeout_s
        while len(results) < len(self._processes) and time.monotonic() < deadline:
            try:
                results.append(self.control.results.get(timeout=1.0))
            except queue.Empty:
                if not any(process.is_alive() for process in self._processes):
                    break
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
        if len(results) < len(self._processes):
            raise RuntimeError(
                f"only {len(results)} of {len(self._processes)} producer processes reported results"
            )
        return results
