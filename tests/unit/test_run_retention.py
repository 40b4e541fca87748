"""Which runs the runs worker drops from its table: finished ones past the retention time."""

from __future__ import annotations

from pipeline.runs.worker import expired_runs

NOW_NS = 1_800_000_000 * 1_000_000_000
HOUR_NS = 3_600 * 1_000_000_000


def entry(status: str, hours_ago: float) -> dict:
    return {"status": status, "last_update_wall_ns": NOW_NS - int(hours_ago * HOUR_NS)}


def test_finished_runs_past_retention_expire() -> None:
    entries = [
        (b"succeeded-old", entry("succeeded", 25)),
        (b"failed-old", entry("failed", 25)),
        (b"abandoned-old", entry("abandoned", 25)),
        (b"succeeded-recent", entry("succeeded", 23)),
    ]
    assert expired_runs(entries, NOW_NS, retention_s=24 * 3_600) == [b"succeeded-old", b"failed-old", b"abandoned-old"]


def test_running_runs_never_expire() -> None:
    assert expired_runs([(b"running-old", entry("running", 1_000))], NOW_NS, retention_s=60) == []


def test_zero_retention_keeps_every_run() -> None:
    assert expired_runs([(b"succeeded-old", entry("succeeded", 1_000))], NOW_NS, retention_s=0) == []
