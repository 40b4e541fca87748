"""A run snapshot: the flat view of a RunState that the runs topic, the database and the viewer share."""

from __future__ import annotations

from typing import Any

from pipeline.runs.averages import compare_to_average
from pipeline.runs.state import RunState

INPUT_CLASSES = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens",
                 "audio_input_tokens")
OUTPUT_CLASSES = ("output_tokens", "reasoning_tokens", "audio_output_tokens")


def build_snapshot(
    state: RunState, agent_average_usd: float | None, wall_ns: int
) -> dict[str, Any]:
    """Return the snapshot of a run; `agent_average_usd` excludes this run itself."""
    planning, tools = state.planning_and_tools_cost()
    return {
        "run_id": state.run_id,
        "agent": state.agent,
        "status": state.status,
        "started_ns": state.started_ns,
        "last_span_end_ns": state.last_end_ns,
        "updated_ns": wall_ns,
        "span_count": state.span_count,
        "step_count": state.step_count,
        "planned_steps": state.planned_steps,
        "elapsed_s": state.elapsed_s,
        "tokens": dict(state.tokens),
        "input_tokens": sum(state.tokens.get(name, 0) for name in INPUT_CLASSES),
        "output_tokens": sum(state.tokens.get(name, 0) for name in OUTPUT_CLASSES),
        "cost_usd": state.cost_usd,
        "planning_cost_usd": planning,
        "tool_cost_usd": tools,
        "unpriced_spans": state.unpriced_spans,
        "cost_by_kind": dict(state.cost_by_kind),
        "ledger": state.ledger(),
        "tool_calls": dict(state.tool_calls),
        "error_count": state.error_count,
        "first_error_step": state.first_error_step,
        "replan_count": state.replan_count,
        "replan_steps": list(state.replan_steps),
        "p95_step_latency_s": state.p95_step_latency_s,
        "flagged_spans": state.flagged_spans,
        "vs_avg": compare_to_average(state.cost_usd, agent_average_usd),
        "agent_avg_cost_usd": agent_average_usd,
    }


def format_run_header(snapshot: dict[str, Any]) -> str:
    """Render the run header line: status, steps, elapsed, tokens, cost, p95 and replans."""
    steps = str(snapshot["step_count"])
    if snapshot.get("planned_steps"):
        steps += f" / {snapshot['planned_steps']}"
    p95 = snapshot.get("p95_step_latency_s")
    p95_text = "-" if p95 is None else f"{p95:.2f} s"
    replans = snapshot["replan_count"]
    replan_text = f"{replans}" + (f" (steps {', '.join(map(str, snapshot['replan_steps']))})"
                                  if replans else "")
    vs_avg = snapshot.get("vs_avg")
    if vs_avg is None:
        vs_text = ""
    elif abs(vs_avg) < 0.005:
        vs_text = " · = avg"
    else:
        vs_text = f" · {'↑' if vs_avg > 0 else '↓'} {abs(vs_avg):.0%} vs avg"
    return (
        f"{snapshot['status'].capitalize()} · {steps} steps · {snapshot['elapsed_s']:.1f} s · "
        f"p95 step {p95_text} · replans {replan_text} · ${snapshot['cost_usd']:.6f}{vs_text}"
    )
