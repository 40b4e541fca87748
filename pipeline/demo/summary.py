"""The per-run summary the demo prints, read back from TimescaleDB."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

_SUMMARY_SQL = """
SELECT run_id,
       min(agent) AS agent,
       count(*) AS spans,
       count(*) FILTER (WHERE kind = 'llm') AS llm_calls,
       count(*) FILTER (WHERE kind = 'tool') AS tool_calls,
       count(*) FILTER (WHERE kind = 'browser') AS browser_calls,
       count(*) FILTER (WHERE kind = 'inbox') AS inbox_calls,
       sum(coalesce(input_tokens, 0) + coalesce(cache_read_tokens, 0)
           + coalesce(cache_write_tokens, 0) + coalesce(cache_write_1h_tokens, 0)) AS tokens_in,
       sum(coalesce(output_tokens, 0) + coalesce(reasoning_tokens, 0)) AS tokens_out,
       sum(cost_usd) AS cost_usd,
       count(*) FILTER (WHERE kind = 'llm' AND pricing_status = 'unpriced') AS unpriced,
       count(*) FILTER (WHERE status = 'error') AS errors,
       extract(epoch FROM max(end_time) - min(start_time)) AS wall_s
FROM spans
WHERE run_id = ANY(%s)
GROUP BY run_id
ORDER BY min(start_time)
"""


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    agent: str
    spans: int
    llm_calls: int
    tool_calls: int
    browser_calls: int
    inbox_calls: int
    tokens_in: int
    tokens_out: int
    cost_usd: float | None
    unpriced: int
    errors: int
    wall_s: float


def read_run_summaries(dsn: str, run_ids: Sequence[str]) -> list[RunSummary]:
    """Return one summary per run id that has spans stored, oldest run first."""
    with psycopg.connect(dsn) as connection:
        rows = connection.execute(_SUMMARY_SQL, (list(run_ids),)).fetchall()
    return [
        RunSummary(
            run_id=row[0], agent=row[1], spans=row[2], llm_calls=row[3], tool_calls=row[4],
            browser_calls=row[5], inbox_calls=row[6], tokens_in=int(row[7] or 0),
            tokens_out=int(row[8] or 0), cost_usd=row[9], unpriced=row[10], errors=row[11],
            wall_s=float(row[12] or 0.0),
        )
        for row in rows
    ]


def count_stored(dsn: str, run_ids: Sequence[str]) -> tuple[int, int]:
    """Return (spans, frames) stored for these runs."""
    with psycopg.connect(dsn) as connection:
        spans = connection.execute(
            "SELECT count(*) FROM spans WHERE run_id = ANY(%s)", (list(run_ids),)
        ).fetchone()[0]
        frames = connection.execute(
            "SELECT count(*) FROM frames WHERE run_id = ANY(%s)", (list(run_ids),)
        ).fetchone()[0]
    return spans, frames


def format_summary_table(summaries: Sequence[RunSummary]) -> str:
    """Render the summaries as a fixed-width table, one line per run."""
    header = (
        f"{'run':<44} {'agent':<26} {'spans':>5} {'llm':>4} {'tools':<17} "
        f"{'tokens in/out':>17} {'cost USD':>10} {'unpriced':>8} {'errors':>6} {'wall s':>8}"
    )
    lines = [header, "-" * len(header)]
    for summary in summaries:
        tools = f"{summary.tool_calls}t {summary.browser_calls}b {summary.inbox_calls}i"
        cost = "-" if summary.cost_usd is None else f"{summary.cost_usd:.6f}"
        tokens = f"{summary.tokens_in}/{summary.tokens_out}"
        lines.append(
            f"{summary.run_id[:44]:<44} {summary.agent[:26]:<26} {summary.spans:>5} "
            f"{summary.llm_calls:>4} {tools:<17} {tokens:>17} {cost:>10} "
            f"{summary.unpriced:>8} {summary.errors:>6} {summary.wall_s:>8.2f}"
        )
    lines.append("tools: t = tool calls, b = browser actions, i = inbox actions")
    return "\n".join(lines)


def count_run_state_spans(dsn: str, run_ids: Sequence[str]) -> int:
    """Return how many spans of these runs the runs worker has folded into run_state."""
    with psycopg.connect(dsn) as connection:
        row = connection.execute(
            "SELECT coalesce(sum(span_count), 0) FROM run_state WHERE run_id = ANY(%s)",
            (list(run_ids),),
        ).fetchone()
    return int(row[0])


def format_run_headers(dsn: str, run_ids: Sequence[str]) -> str:
    """Render one run-header line per run from run_state, in the order of `run_ids`."""
    from pipeline.runs.snapshot import format_run_header

    with psycopg.connect(dsn) as connection:
        cursor = connection.execute(
            "SELECT run_id, agent, status, step_count, planned_steps, elapsed_s, cost_usd,"
            " p95_step_latency_s, replan_count, replan_steps, vs_avg"
            " FROM run_state WHERE run_id = ANY(%s)",
            (list(run_ids),),
        )
        names = [column.name for column in cursor.description]
        rows = {row[0]: dict(zip(names, row)) for row in cursor.fetchall()}
    lines = []
    for run_id in run_ids:
        snapshot = rows.get(run_id)
        if snapshot is None:
            lines.append(f"{run_id[:44]:<44} (no run metrics yet)")
            continue
        agent = snapshot["agent"][:26]
        lines.append(f"{run_id[:44]:<44} {agent:<26} {format_run_header(snapshot)}")
    return "\n".join(lines)
