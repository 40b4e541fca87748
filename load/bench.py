"""`make bench`: the floor, then the pipeline at full and at fixed rate; one line per figure.

Runs against the local stack's default settings (SPANLINE_* environment variables apply) and
takes about 6-8 minutes. Every run removes its own topics and rows when it ends.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

from load.floor import cleanup_floor, measure_floor
from load.run import LoadOptions, run_load
from load.shapes import load_shape
from pipeline.config import Settings

logger = logging.getLogger(__name__)

BUDGET_S = 600.0
# A full-rate run takes its window plus about 60 s of start-up, drain and report.
FULL_RUN_OVERHEAD_S = 60.0
LATENCY_RATE = 60_000


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    started = time.monotonic()
    settings = Settings.from_env()
    dsn = settings.database_dsn.reveal()
    shape = load_shape()
    report_dir = Path("artifacts/load")
    print(f"shape {shape.source}", flush=True)

    floor_prefix = f"loadfloor-{uuid.uuid4().hex[:8]}"
    try:
        floor = measure_floor(dsn, shape, floor_prefix, duration_s=15.0)
    finally:
        cleanup_floor(dsn, floor_prefix)
    print(f"floor rows/s {floor.rows_per_second:,.0f}", flush=True)

    def options(**overrides: object) -> LoadOptions:
        base = LoadOptions(
            bootstrap=settings.kafka_bootstrap, dsn=dsn, s3_endpoint=settings.s3_endpoint,
            rate=0.0, duration_s=60.0, warmup_s=10.0, workers=1, partitions=4,
            report_dir=report_dir, shape=shape,
        )
        for name, value in overrides.items():
            setattr(base, name, value)
        return base

    one = run_load(options(label="bench-1-worker", profile=True))
    e2e = one["e2e_spans_per_s"]
    print(f"e2e spans/s {e2e:,.0f}", flush=True)
    print(f"ratio e2e/floor {e2e / floor.rows_per_second:.2f}", flush=True)

    latency = run_load(options(label="bench-latency", rate=float(LATENCY_RATE), duration_s=20.0,
                               warmup_s=5.0))
    p99 = latency["latency_s"]["p99"]
    print(f"p99 latency s {p99 if p99 is None else round(p99, 3)} "
          f"(offered {latency['offered_spans_per_s']:,.0f} spans/s of {LATENCY_RATE:,})", flush=True)

    runs = [one, latency]
    remaining = BUDGET_S - (time.monotonic() - started)
    if remaining > 60.0 + FULL_RUN_OVERHEAD_S + 30.0:
        two = run_load(options(label="bench-2-workers", workers=2))
        runs.append(two)
        print(f"scaling 2 workers / 1 {two['e2e_spans_per_s'] / e2e:.2f}" if e2e else
              "scaling 2 workers / 1 n/a", flush=True)
    else:
        print(f"scaling 2 workers / 1 skipped ({remaining:.0f} s left of the {BUDGET_S:.0f} s budget)")

    print(f"lost {sum(run['lost'] for run in runs)}")
    print(f"duplicated {sum(run['duplicated'] for run in runs)}")
    print(f"dead-lettered {sum(run['dead_lettered_messages'] for run in runs)}")
    if one.get("worker_stage_shares"):
        shares = ", ".join(f"{stage} {share:.0%}" for stage, share in one["worker_stage_shares"].items())
        print(f"worker time per stage {shares}")
    print(f"bench seconds {time.monotonic() - started:.0f}")
    return 0 if all(run["exact"] for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
