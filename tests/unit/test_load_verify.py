"""Loss and duplicate accounting of the load harness, and its patched batch templates."""

from __future__ import annotations

import random
import time

from load.generator import WordText, build_template
from load.shapes import DEFAULT_SHAPE
from load.verify import StoredCount, compare
from pipeline.wire.spans import decode_span_batch


def test_compare_exact_when_every_span_stored_once() -> None:
    verdict = compare({"run-a": 3, "run-b": 2}, {"run-a": StoredCount(3, 3), "run-b": StoredCount(2, 2)})

    assert verdict.exact
    assert verdict.produced == 5
    assert verdict.stored_rows == 5


def test_compare_detects_duplicate_and_dropped_span() -> None:
    # run-a: one span stored twice; run-b: one of its two spans missing.
    verdict = compare({"run-a": 3, "run-b": 2}, {"run-a": StoredCount(4, 3), "run-b": StoredCount(1, 1)})

    assert verdict.duplicated == 1
    assert verdict.duplicated_by_key == {"run-a": 1}
    assert verdict.lost == 1
    assert verdict.lost_by_key == {"run-b": 1}
    assert not verdict.exact


def test_compare_counts_run_never_stored_as_lost() -> None:
    verdict = compare({"run-a": 4}, {})

    assert verdict.lost == 4
    assert verdict.stored_rows == 0


def test_compare_counts_rows_of_unknown_runs_as_unexpected() -> None:
    verdict = compare({"run-a": 1}, {"run-a": StoredCount(1, 1), "run-z": StoredCount(2, 2)})

    assert verdict.unexpected == 2
    assert verdict.lost == 0
    assert not verdict.exact


def test_template_render_sets_ids_and_times() -> None:
    rng = random.Random(3)
    template = build_template(DEFAULT_SHAPE, "load-test-00-00001", 120, rng, WordText(rng))
    now_ns = time.time_ns()

    batch = decode_span_batch(template.render(now_ns, b"0a00000000ff"))

    assert batch.size == 120
    assert batch.run_id == "load-test-00-00001"
    assert len(set(batch.columns["span_id"])) == 120
    assert all(span_id.startswith("0a00000000ff") for span_id in batch.columns["span_id"])
    assert batch.columns["end_ns"] == [now_ns] * 120
    assert all(start <= now_ns for start in batch.columns["start_ns"])
    assert set(batch.columns["parent_span_id"][1:]) == {batch.columns["span_id"][0]}
