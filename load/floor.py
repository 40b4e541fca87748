"""The floor: the load's rows COPYed straight into the spans hypertable, without Kafka or workers.

It uses the span worker's own sink (same columns, dumpers and offset bookkeeping) on batches
decoded and priced before the clock starts, so its rows/s is the most the database path can give
the pipeline on this machine.
"""

from __future__ import annotations

import argparse
import logging
import time
import uuid
from dataclasses import dataclass

from load.generator import build_templates
from load.shapes import TrafficShape, load_shape
from pipeline.config import Settings
from pipeline.pricing.columns import price_columns
from pipeline.stores.span_sink import SourcedSpanBatch, SpanSink
from pipeline.wire.spans import decode_span_batch

logger = logging.getLogger(__name__)

# Messages per sink write: what one worker write holds at ~100K spans/s within its 200 ms window.
MESSAGES_PER_WRITE = 60


@dataclass
class FloorResult:
    rows: int
    seconds: float
    writes: int
    # CPU seconds this process spent (psycopg formatting rows); the rest of the cost is the server's.
    client_cpu_seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def measure_floor(
    dsn: str, shape: TrafficShape, run_prefix: str, duration_s: float = 15.0,
    messages_per_write: int = MESSAGES_PER_WRITE, templates: int = 32,
) -> FloorResult:
    """COPY pre-built batches through SpanSink for duration_s and count the rows written.

    Rows carry run ids under run_prefix, and offsets go to a consumer group named after it, so
    `cleanup_floor` removes both.
    """
    built = build_templates(shape, run_prefix, 0xF0, templates, 100, 500, seed=7)
    decoded = [decode_span_batch(template.payload) for template in built]
    priced = [price_columns(batch.columns) for batch in decoded]
    sink = SpanSink(dsn, _floor_group(run_prefix), _floor_topic(run_prefix))
    offset = 0
    rows = 0
    writes = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    try:
        while time.perf_counter() - started < duration_s:
            batches = []
            for _ in range(messages_per_write):
                index = offset % len(decoded)
                batch = decoded[index]
                batches.append(SourcedSpanBatch(
                    partition=0, offset=offset, run_id=batch.run_id, agent=batch.agent,
                    size=batch.size, columns=batch.columns, cost_columns=priced[index],
                ))
                offset += 1
            rows += sink.write(batches).spans_stored
            writes += 1
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    finally:
        sink.close()
    logger.info("floor rows=%d seconds=%.1f writes=%d client_cpu_s=%.1f", rows, elapsed, writes, cpu)
    return FloorResult(rows=rows, seconds=elapsed, writes=writes, client_cpu_seconds=cpu)


def cleanup_floor(dsn: str, run_prefix: str) -> None:
    """Delete the floor's rows and its stored offsets."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(
            "DELETE FROM spans WHERE run_id LIKE %s", (run_prefix.replace("_", r"\_") + "-%",)
        )
        connection.execute(
            "DELETE FROM sink_offsets WHERE consumer_group = %s", (_floor_group(run_prefix),)
        )


def _floor_group(run_prefix: str) -> str:
    return f"{run_prefix}-floor"


def _floor_topic(run_prefix: str) -> str:
    return f"{run_prefix}.floor"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure binary COPY of load rows into spans.")
    parser.add_argument("--dsn", default=None, help="PostgreSQL DSN (default: SPANLINE_DATABASE_DSN)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds to COPY (default 15)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    dsn = args.dsn or Settings.from_env().database_dsn.reveal()
    prefix = f"loadfloor-{uuid.uuid4().hex[:8]}"
    try:
        result = measure_floor(dsn, load_shape(), prefix, args.duration)
    finally:
        cleanup_floor(dsn, prefix)
    print(f"floor rows/s {result.rows_per_second:,.0f}")
    print(f"floor client cpu share {result.client_cpu_seconds / result.seconds:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
