"""The run sink: latest state per run (`run_state`) and snapshots over time (`run_metrics`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import psycopg

log = logging.getLogger(__name__)

_UPSERT_SQL = """
INSERT INTO run_state (
    run_id, agent, status, started_at, updated_at, last_span_end, span_count, step_count,
    planned_steps, elapsed_s, tokens, input_tokens, output_tokens, cost_usd, planning_cost_usd,
    tool_cost_usd, unpriced_spans, cost_by_kind, ledger, tool_calls, error_count,
    first_error_step, replan_count, replan_steps, p95_step_latency_s, flagged_spans, vs_avg,
    agent_avg_cost_usd
) VALUES (
    %(run_id)s, %(agent)s, %(status)s, %(started_at)s, %(updated_at)s, %(last_span_end)s,
    %(span_count)s, %(step_count)s, %(planned_steps)s, %(elapsed_s)s, %(tokens)s,
    %(input_tokens)s, %(output_tokens)s, %(cost_usd)s, %(planning_cost_usd)s,
    %(tool_cost_usd)s, %(unpriced_spans)s, %(cost_by_kind)s, %(ledger)s, %(tool_calls)s,
    %(error_count)s, %(first_error_step)s, %(replan_count)s, %(replan_steps)s,
    %(p95_step_latency_s)s, %(flagged_spans)s, %(vs_avg)s, %(agent_avg_cost_usd)s
)
ON CONFLICT (run_id) DO UPDATE SET
    agent = EXCLUDED.agent, status = EXCLUDED.status, started_at = EXCLUDED.started_at,
    updated_at = EXCLUDED.updated_at, last_span_end = EXCLUDED.last_span_end,
    span_count = EXCLUDED.span_count, step_count = EXCLUDED.step_count,
    planned_steps = EXCLUDED.planned_steps, elapsed_s = EXCLUDED.elapsed_s,
    tokens = EXCLUDED.tokens, input_tokens = EXCLUDED.input_tokens,
    output_tokens = EXCLUDED.output_tokens, cost_usd = EXCLUDED.cost_usd,
    planning_cost_usd = EXCLUDED.planning_cost_usd, tool_cost_usd = EXCLUDED.tool_cost_usd,
    unpriced_spans = EXCLUDED.unpriced_spans, cost_by_kind = EXCLUDED.cost_by_kind,
    ledger = EXCLUDED.ledger, tool_calls = EXCLUDED.tool_calls,
    error_count = EXCLUDED.error_count, first_error_step = EXCLUDED.first_error_step,
    replan_count = EXCLUDED.replan_count, replan_steps = EXCLUDED.replan_steps,
    p95_step_latency_s = EXCLUDED.p95_step_latency_s, flagged_spans = EXCLUDED.flagged_spans,
    vs_avg = EXCLUDED.vs_avg, agent_avg_cost_usd = EXCLUDED.agent_avg_cost_usd
-- A redelivered older snapshot never overwrites a newer one.
WHERE run_state.span_count <= EXCLUDED.span_count
"""

_METRICS_SQL = """
INSERT INTO run_metrics (time, run_id, agent, status, step_count, span_count, cost_usd,
                         input_tokens, output_tokens, p95_step_latency_s, replan_count, error_count)
VALUES (%(updated_at)s, %(run_id)s, %(agent)s, %(status)s, %(step_count)s, %(span_count)s,
        %(cost_usd)s, %(input_tokens)s, %(output_tokens)s, %(p95_step_latency_s)s,
        %(replan_count)s, %(error_count)s)
"""


def _timestamp(ns: int | None) -> datetime | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


def _row(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    row = dict(snapshot)
    row["started_at"] = _timestamp(snapshot["started_ns"])
    row["last_span_end"] = _timestamp(snapshot["last_span_end_ns"])
    row["updated_at"] = _timestamp(snapshot["updated_ns"])
    for name in ("tokens", "cost_by_kind", "ledger", "tool_calls"):
        row[name] = json.dumps(snapshot[name])
    return row


class RunSink:
    """Upserts run state and appends run metrics, one transaction per call."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._connection: psycopg.Connection | None = None

    def _connect(self) -> psycopg.Connection:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self._dsn)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def write(self, snapshots: Sequence[Mapping[str, Any]]) -> None:
        """Store the snapshots; raise psycopg.Error on failure (nothing of the call is kept)."""
        if not snapshots:
            return
        rows = [_row(snapshot) for snapshot in snapshots]
        connection = self._connect()
        try:
            with connection.transaction(), connection.cursor() as cursor:
                cursor.executemany(_UPSERT_SQL, rows)
                cursor.executemany(_METRICS_SQL, rows)
        except psycopg.OperationalError:
            self.close()
            raise
