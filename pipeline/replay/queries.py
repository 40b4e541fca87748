"""Reads of runs, spans and frame rows for the viewer: run_state when it exists, else spans.

The `run_state` table is written by the run-state worker. Where it is absent, or has no row for a
run, the KPI cards are folded from the run's spans with the same rules (pipeline.runs.state), so
the viewer shows the same figures either way.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pipeline.pricing.usage import USAGE_CLASSES
from pipeline.replay.frames import FrameRef
from pipeline.runs.averages import AVERAGE_WINDOW_RUNS, compare_to_average
from pipeline.runs.state import RunState

logger = logging.getLogger(__name__)

# A run with no root agent span and no new span for this long is shown as abandoned.
# NOTE: the run-state worker decides abandonment itself; this fallback guesses the same idle time.
ABANDONED_AFTER_S = 600.0
# Only runs of the agent started within this period count towards the fallback "vs avg", so the
# query touches recent hypertable chunks only.
AVERAGE_LOOKBACK = "30 days"
ACTION_KINDS = ("llm", "tool", "browser", "inbox")

_NS = "(extract(epoch FROM {col}) * 1000000)::bigint * 1000"

SPAN_COLUMNS = f"""
    agent, span_id, parent_span_id, trace_id, step, kind, name, status, error_message, provider, model,
    {_NS.format(col="start_time")} AS start_ns, {_NS.format(col="end_time")} AS end_ns,
    {", ".join(USAGE_CLASSES)}, usage_source, tool_name, tool_args, attributes::text AS attributes,
    cost_usd, input_cost_usd, cache_read_cost_usd, cache_write_cost_usd, output_cost_usd,
    reasoning_cost_usd, other_cost_usd, reported_cost_usd, pricing_status, ingest_time
"""

FRAME_COLUMNS = f"""
    seq, step, {_NS.format(col="capture_time")} AS capture_ns, kind, content_type, sha256,
    size_bytes, object_key, span_id, width, height, ingest_time
"""


async def connect(dsn: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row)


async def table_exists(connection: psycopg.AsyncConnection[Any], table: str) -> bool:
    cursor = await connection.execute("SELECT to_regclass(%s) IS NOT NULL AS present", (f"public.{table}",))
    row = await cursor.fetchone()
    return bool(row and row["present"])


async def run_agent(connection: psycopg.AsyncConnection[Any], run_id: str) -> str | None:
    """Return the agent of a run that has spans or frames, or None when the run is unknown."""
    cursor = await connection.execute("SELECT agent FROM spans WHERE run_id = %s LIMIT 1", (run_id,))
    row = await cursor.fetchone()
    if row:
        return row["agent"]
    cursor = await connection.execute("SELECT 1 FROM frames WHERE run_id = %s LIMIT 1", (run_id,))
    return "" if await cursor.fetchone() else None


def _frame_ref(row: dict[str, Any]) -> FrameRef:
    return FrameRef(
        seq=int(row["seq"]),
        step=int(row["step"]),
        capture_ns=int(row["capture_ns"]),
        kind=row["kind"],
        content_type=row["content_type"],
        sha256=row["sha256"],
        size_bytes=int(row["size_bytes"]),
        object_key=row["object_key"],
        span_id=row["span_id"],
        width=row["width"],
        height=row["height"],
    )


async def fetch_frames(
    connection: psycopg.AsyncConnection[Any], run_id: str, since: datetime | None = None
) -> tuple[list[FrameRef], datetime | None]:
    """Return a run's frame rows (optionally those ingested after `since`) and the newest ingest time."""
    sql = f"SELECT {FRAME_COLUMNS} FROM frames WHERE run_id = %s"
    params: list[Any] = [run_id]
    if since is not None:
        sql += " AND ingest_time > %s"
        params.append(since)
    cursor = await connection.execute(sql + " ORDER BY capture_time, seq", params)
    rows = await cursor.fetchall()
    newest = max((row["ingest_time"] for row in rows), default=None)
    return [_frame_ref(row) for row in rows], newest


def span_json(row: dict[str, Any]) -> dict[str, Any]:
    """Convert a span row into the JSON the viewer shows; attributes are parsed."""
    span = {key: value for key, value in row.items() if key not in ("ingest_time", "attributes")}
    try:
        span["attributes"] = json.loads(row["attributes"] or "{}")
    except ValueError:
        span["attributes"] = {}
    span["start_ns"] = int(row["start_ns"])
    span["end_ns"] = int(row["end_ns"])
    return span


async def fetch_spans(
    connection: psycopg.AsyncConnection[Any], run_id: str, since: datetime | None = None
) -> tuple[list[dict[str, Any]], datetime | None]:
    """Return a run's span rows (optionally those ingested after `since`) and the newest ingest time."""
    sql = f"SELECT {SPAN_COLUMNS} FROM spans WHERE run_id = %s"
    params: list[Any] = [run_id]
    if since is not None:
        sql += " AND ingest_time > %s"
        params.append(since)
    cursor = await connection.execute(sql + " ORDER BY start_time, step, span_id", params)
    rows = await cursor.fetchall()
    newest = max((row["ingest_time"] for row in rows), default=None)
    return rows, newest


# Run summary (KPI cards)


async def fetch_summary(connection: psycopg.AsyncConnection[Any], run_id: str) -> dict[str, Any] | None:
    """Return the KPI cards of a run, from run_state when it has the run, else folded from spans."""
    if await table_exists(connection, "run_state"):
        cursor = await connection.execute("SELECT * FROM run_state WHERE run_id = %s", (run_id,))
        row = await cursor.fetchone()
        if row is not None:
            return _summary_from_run_state(row)
    rows, _ = await fetch_spans(connection, run_id)
    if not rows:
        return None
    summary = fold_summary(run_id, rows)
    summary["vs_avg"] = await _fallback_vs_avg(connection, summary)
    return summary


def _summary_from_run_state(row: dict[str, Any]) -> dict[str, Any]:
    summary = {key: _jsonable(value) for key, value in row.items()}
    summary["source"] = "run_state"
    summary["tokens_in"] = row.get("input_tokens")
    summary["tokens_out"] = row.get("output_tokens")
    return summary


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def fold_summary(run_id: str, rows: Sequence[dict[str, Any]], now: float | None = None) -> dict[str, Any]:
    """Fold span rows into the KPI cards with the run-state rules; pure, for the fallback path."""
    state = RunState(run_id=run_id)
    columns: dict[str, list[Any]] = {
        name: [row[name] for row in rows]
        for name in ("span_id", "parent_span_id", "step", "kind", "start_ns", "end_ns", "status", "model", "attributes", *USAGE_CLASSES)
    }
    cost_columns = {"cost_usd": [row["cost_usd"] for row in rows], "pricing_status": [row["pricing_status"] for row in rows]}
    agent = rows[0].get("agent", "") if rows else ""
    state.apply_batch(agent, columns, cost_columns, partition=0, offset=0, wall_ns=0)

    newest_ingest = max((row["ingest_time"] for row in rows if row.get("ingest_time")), default=None)
    status = state.status
    current = time.time() if now is None else now
    if status == "running" and newest_ingest is not None and current - newest_ingest.timestamp() > ABANDONED_AFTER_S:
        status = "abandoned"
    planning, tools = state.planning_and_tools_cost()
    tokens_in = _sum_known(state.tokens, ("input_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "audio_input_tokens"))
    tokens_out = _sum_known(state.tokens, ("output_tokens", "reasoning_tokens", "audio_output_tokens"))
    return {
        "source": "spans",
        "run_id": run_id,
        "agent": agent,
        "status": status,
        "started_ns": state.started_ns,
        "ended_ns": state.last_end_ns,
        "step_count": state.step_count,
        "planned_steps": state.planned_steps,
        "elapsed_s": state.elapsed_s,
        "tokens": state.tokens,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "input_tokens": state.tokens.get("input_tokens"),
        "output_tokens": state.tokens.get("output_tokens"),
        "cost_usd": state.cost_usd,
        "planning_cost_usd": planning,
        "tool_cost_usd": tools,
        "unpriced_spans": state.unpriced_spans,
        "error_count": state.error_count,
        "first_error_step": state.first_error_step,
        "replan_count": state.replan_count,
        "replan_steps": state.replan_steps,
        "p95_step_latency_s": state.p95_step_latency_s,
        "tool_calls": state.tool_calls,
        "ledger": state.ledger(),
        "span_count": state.span_count,
    }


def _sum_known(tokens: dict[str, int], names: Sequence[str]) -> int | None:
    known = [tokens[name] for name in names if name in tokens]
    return sum(known) if known else None


async def _fallback_vs_avg(connection: psycopg.AsyncConnection[Any], summary: dict[str, Any]) -> float | None:
    if not summary["agent"] or summary["started_ns"] is None:
        return None
    cursor = await connection.execute(
        f"""
        SELECT run_id, sum(cost_usd) AS cost FROM spans
        WHERE agent = %s AND run_id <> %s
          AND start_time >= to_timestamp(%s / 1e9) - INTERVAL '{AVERAGE_LOOKBACK}'
        GROUP BY run_id HAVING sum(cost_usd) IS NOT NULL
        ORDER BY max(end_time) DESC LIMIT %s
        """,
        (summary["agent"], summary["run_id"], summary["started_ns"], AVERAGE_WINDOW_RUNS),
    )
    costs = [row["cost"] for row in await cursor.fetchall()]
    average = sum(costs) / len(costs) if costs else None
    return compare_to_average(summary["cost_usd"], average)


# Runs list


async def fetch_runs(
    connection: psycopg.AsyncConnection[Any],
    *,
    agent: str | None = None,
    status: str | None = None,
    search: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Return recent runs, newest first, filtered by agent, status and a run id substring."""
    if await table_exists(connection, "run_state"):
        cursor = await connection.execute("SELECT EXISTS (SELECT 1 FROM run_state) AS has_rows")
        row = await cursor.fetchone()
        if row and row["has_rows"]:
            return await _runs_from_run_state(connection, agent, status, search, limit)
    return await _runs_from_spans(connection, agent, status, search, limit)


async def _runs_from_run_state(connection, agent, status, search, limit) -> list[dict[str, Any]]:
    conditions, params = _run_filters(agent, search)
    if status:
        conditions.append("status = %s")
        params.append(status)
    where = " AND ".join(conditions) or "TRUE"
    cursor = await connection.execute(
        f"""
        SELECT run_id, agent, status, step_count, elapsed_s, input_tokens AS tokens_in,
               output_tokens AS tokens_out, cost_usd, error_count, updated_at
        FROM run_state WHERE {where} ORDER BY updated_at DESC LIMIT %s
        """,
        [*params, limit],
    )
    return [{key: _jsonable(value) for key, value in row.items()} for row in await cursor.fetchall()]


async def _runs_from_spans(connection, agent, status, search, limit) -> list[dict[str, Any]]:
    conditions, params = _run_filters(agent, search)
    where = " AND ".join(conditions) or "TRUE"
    # NOTE: without run_state this aggregates every span row, about 2 s per million spans.
    cursor = await connection.execute(
        f"""
        WITH runs AS (
            SELECT run_id, min(agent) AS agent,
                   count(DISTINCT step) FILTER (WHERE kind IN ('llm', 'tool', 'browser', 'inbox')) AS step_count,
                   extract(epoch FROM max(end_time) - min(start_time))::float8 AS elapsed_s,
                   sum(coalesce(input_tokens, 0) + coalesce(cache_read_tokens, 0)
                       + coalesce(cache_write_tokens, 0) + coalesce(cache_write_1h_tokens, 0))::bigint AS tokens_in,
                   sum(coalesce(output_tokens, 0) + coalesce(reasoning_tokens, 0))::bigint AS tokens_out,
                   sum(cost_usd) AS cost_usd,
                   count(*) FILTER (WHERE status = 'error') AS error_count,
                   bool_or(kind = 'agent' AND parent_span_id = '' AND status = 'error') AS root_failed,
                   bool_or(kind = 'agent' AND parent_span_id = '') AS root_ended,
                   max(ingest_time) AS updated_at
            FROM spans WHERE {where} GROUP BY run_id
        )
        SELECT *, CASE WHEN root_failed THEN 'failed'
                       WHEN root_ended THEN 'succeeded'
                       WHEN updated_at < now() - make_interval(secs => %s) THEN 'abandoned'
                       ELSE 'running' END AS status
        FROM runs ORDER BY updated_at DESC
        """,
        [*params, ABANDONED_AFTER_S],
    )
    runs = []
    for row in await cursor.fetchall():
        if status and row["status"] != status:
            continue
        row.pop("root_failed")
        row.pop("root_ended")
        row["elapsed_s"] = float(row["elapsed_s"] or 0)
        runs.append({key: _jsonable(value) for key, value in row.items()})
        if len(runs) >= limit:
            break
    return runs


def _run_filters(agent: str | None, search: str | None) -> tuple[list[str], list[Any]]:
    conditions: list[str] = []
    params: list[Any] = []
    if agent:
        conditions.append("agent = %s")
        params.append(agent)
    if search:
        conditions.append("run_id ILIKE %s")
        params.append("%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    return conditions, params
