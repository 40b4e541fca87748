"""Run state folded from span batches: p95 step latency, replans, ledger, status, idempotence."""

from __future__ import annotations

import json
import math
import random

import pytest

from pipeline.runs.averages import AgentAverage, compare_to_average
from pipeline.runs.state import STEP_WINDOW, RunState, nearest_rank_percentile

MS = 1_000_000
T0 = 1_780_000_000_000_000_000


def columns_for(spans: list[dict]) -> tuple[dict, dict]:
    """Build wire-shaped span columns and pricing columns from a list of span dicts."""
    names = [
        "span_id", "parent_span_id", "step", "kind", "start_ns", "end_ns", "status", "model",
        "attributes", "input_tokens", "output_tokens",
    ]
    defaults = {
        "parent_span_id": "p", "status": "ok", "model": None, "attributes": "{}",
        "input_tokens": None, "output_tokens": None,
    }
    columns = {name: [span.get(name, defaults.get(name)) for span in spans] for name in names}
    costs = {
        "cost_usd": [span.get("cost") for span in spans],
        "pricing_status": [span.get("pricing_status", "priced") for span in spans],
    }
    return columns, costs


def step_span(step: int, duration_ms: int, kind: str = "tool", **extra) -> dict:
    start = T0 + step * 10_000 * MS
    return {
        "span_id": f"s{step}-{kind}-{extra.pop('suffix', '')}",
        "step": step, "kind": kind, "start_ns": start, "end_ns": start + duration_ms * MS,
        **extra,
    }


def apply(state: RunState, spans: list[dict], offset: int, partition: int = 0) -> bool:
    columns, costs = columns_for(spans)
    return state.apply_batch("agent-a", columns, costs, partition, offset, wall_ns=T0)


def test_nearest_rank_percentile_definition() -> None:
    assert nearest_rank_percentile([], 95) is None
    assert nearest_rank_percentile([7.0], 95) == 7.0
    # 20 values 1..20: rank ceil(0.95 * 20) = 19.
    assert nearest_rank_percentile([float(v) for v in range(20, 0, -1)], 95) == 19.0
    # 30 values: rank ceil(28.5) = 29.
    assert nearest_rank_percentile([float(v) for v in range(1, 31)], 95) == 29.0


def test_thirty_step_run_p95_at_every_step() -> None:
    # Step n lasts 10 * n ms, except step 7, which is the slowest at 900 ms.
    durations = {n: 10 * n for n in range(1, 31)}
    durations[7] = 900
    state = RunState(run_id="r-30")
    for step in range(1, 31):
        apply(state, [step_span(step, durations[step])], offset=step)
        seen = [durations[n] / 1000 for n in range(1, step + 1)]
        expected = sorted(seen)[math.ceil(0.95 * len(seen)) - 1]
        assert state.p95_step_latency_s == pytest.approx(expected), f"at step {step}"
    assert state.step_count == 30
    # Final value by hand: 30 durations, rank 29 is the second largest, 300 ms (step 30 is 300,
    # step 7 is 900, step 29 is 290).
    assert state.p95_step_latency_s == pytest.approx(0.300)


def test_step_latency_spans_merge_across_batches() -> None:
    state = RunState(run_id="r-merge")
    llm = step_span(1, 100, kind="llm")
    tool = dict(step_span(1, 0, kind="tool"), start_ns=llm["start_ns"] + 150 * MS,
                end_ns=llm["start_ns"] + 400 * MS)
    apply(state, [llm], offset=1)
    apply(state, [tool], offset=2)
    assert state.p95_step_latency_s == pytest.approx(0.400)
    assert state.step_count == 1


def test_out_of_order_steps_match_in_order_result() -> None:
    spans = [step_span(step, random.Random(step).randint(5, 500)) for step in range(1, 151)]
    in_order = RunState(run_id="a")
    for offset, span in enumerate(spans):
        apply(in_order, [span], offset=offset)
    shuffled = spans[:]
    random.Random(3).shuffle(shuffled)
    out_of_order = RunState(run_id="b")
    for offset, span in enumerate(shuffled):
        apply(out_of_order, [span], offset=offset)

    assert out_of_order.p95_step_latency_s == in_order.p95_step_latency_s
    assert sorted(out_of_order.step_window, key=int) == sorted(in_order.step_window, key=int)
    assert len(in_order.step_window) == STEP_WINDOW
    window_durations = [
        (span["end_ns"] - span["start_ns"]) / 1e9 for span in spans[-STEP_WINDOW:]
    ]
    assert in_order.p95_step_latency_s == nearest_rank_percentile(window_durations, 95)


def test_end_before_start_is_flagged_and_left_out() -> None:
    state = RunState(run_id="r-flag")
    good = step_span(1, 200)
    bad = dict(step_span(2, 0), end_ns=step_span(2, 0)["start_ns"] - 5 * MS)
    apply(state, [good, bad], offset=1)
    assert state.flagged_spans == 1
    assert state.span_count == 2
    assert state.p95_step_latency_s == pytest.approx(0.200)


def test_two_replans_reported_with_steps() -> None:
    state = RunState(run_id="r-replan")
    spans = [
        step_span(1, 10, kind="plan", suffix="a"),
        step_span(2, 10, kind="llm"),
        step_span(3, 10, kind="plan", suffix="b"),
        step_span(4, 10, kind="tool"),
        step_span(6, 10, kind="llm", attributes=json.dumps({"spanline.replan": True})),
    ]
    apply(state, spans, offset=1)
    assert state.replan_count == 2
    assert state.replan_steps == [3, 6]


def test_ledger_shares_sum_to_one_and_costs_to_total() -> None:
    state = RunState(run_id="r-ledger")
    planner = json.dumps({"spanline.role": "planner"})
    executor = json.dumps({"spanline.role": "executor"})
    spans = [
        step_span(1, 10, kind="llm", model="gpt-4o", attributes=planner, cost=0.052),
        step_span(2, 10, kind="llm", model="gpt-4o-mini", attributes=executor, cost=0.011),
        step_span(3, 10, kind="llm", model="gpt-4o", attributes=planner, cost=0.010),
        step_span(4, 10, kind="tool", cost=0.0101),
        step_span(5, 10, kind="llm", model="acme-llm-9", pricing_status="unpriced"),
    ]
    apply(state, spans, offset=1)
    ledger = state.ledger()
    assert sum(entry["share"] for entry in ledger) == pytest.approx(1.0)
    assert sum(entry["cost_usd"] for entry in ledger) == pytest.approx(state.cost_usd)
    assert ledger[0]["model"] == "gpt-4o"
    assert ledger[0]["role"] == "planner"
    assert ledger[0]["cost_usd"] == pytest.approx(0.062)
    assert state.unpriced_spans == 1
    planning, tools = state.planning_and_tools_cost()
    assert planning == pytest.approx(0.073)
    assert tools == pytest.approx(0.0101)


def test_redelivered_message_is_not_applied_twice() -> None:
    state = RunState(run_id="r-once")
    spans = [step_span(1, 10, kind="llm", cost=0.5)]
    assert apply(state, spans, offset=41) is True
    assert apply(state, spans, offset=41) is False
    assert apply(state, spans, offset=40) is False
    assert state.cost_usd == pytest.approx(0.5)
    assert state.span_count == 1


def test_errors_and_status_from_root_agent_span() -> None:
    state = RunState(run_id="r-status")
    apply(state, [step_span(2, 10, status="error"), step_span(5, 10, status="error")], offset=1)
    assert state.status == "running"
    assert state.error_count == 2
    assert state.first_error_step == 2
    root = dict(step_span(6, 10, kind="agent"), parent_span_id="", status="error")
    apply(state, [root], offset=2)
    assert state.status == "failed"


def test_state_round_trips_through_dict() -> None:
    state = RunState(run_id="r-dict")
    apply(state, [step_span(1, 10, kind="llm", cost=0.1, input_tokens=5, output_tokens=7)], 1)
    copy = RunState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert copy == state
    assert copy.tokens == {"input_tokens": 5, "output_tokens": 7}


def test_vs_average_against_three_earlier_runs() -> None:
    average = AgentAverage(agent="agent-a")
    for run_id, cost in (("r1", 0.10), ("r2", 0.12), ("r3", 0.08)):
        assert average.add_completed_run(run_id, cost)
    assert not average.add_completed_run("r2", 0.12)
    assert average.average() == pytest.approx(0.10)
    # A run costing 0.082 is 18 % below the 0.10 average.
    assert compare_to_average(0.082, average.average()) == pytest.approx(-0.18)
    assert compare_to_average(0.082, None) is None
