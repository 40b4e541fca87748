"""Write the Spanline Grafana dashboards (Classic dashboard JSON) into deploy/grafana/dashboards.

The JSON files are generated so that every panel shares one layout, data source and style. Edit
this file, run `python deploy/grafana/build_dashboards.py`, then commit both. The test
tests/deploy/test_grafana_panels.py checks that the committed JSON matches this output and runs
every panel's SQL against TimescaleDB.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "grafana-postgresql-datasource", "uid": "spanline-tsdb"}
DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"
# Grafana migrates Classic dashboard JSON with an older schemaVersion on load, so a conservative
# number keeps the files loadable on older Grafana releases too.
SCHEMA_VERSION = 39
GRID_WIDTH = 24

# Span duration in seconds, shared by every latency panel.
DURATION_S = "extract(epoch FROM end_time - start_time)"
RUN_LINK = "/d/spanline-run/spanline-run?var-run_id=${__value.raw}&${__url_time_range}"


class Layout:
    """Place panels left to right in rows of GRID_WIDTH columns and hand out panel ids."""

    def __init__(self) -> None:
        self.next_id = 1
        self.x = 0
        self.y = 0
        self.row_height = 0

    def place(self, width: int, height: int) -> tuple[int, dict[str, int]]:
        if self.x + width > GRID_WIDTH:
            self.x = 0
            self.y += self.row_height
            self.row_height = 0
        position = {"x": self.x, "y": self.y, "w": width, "h": height}
        self.x += width
        self.row_height = max(self.row_height, height)
        panel_id = self.next_id
        self.next_id += 1
        return panel_id, position


def panel(
    layout: Layout,
    title: str,
    sql: str,
    *,
    kind: str = "timeseries",
    fmt: str = "time_series",
    width: int = 12,
    height: int = 8,
    unit: str | None = None,
    description: str = "",
    links: list[dict[str, Any]] | None = None,
    overrides: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Build one panel with a single raw-SQL target on the Spanline data source."""
    panel_id, position = layout.place(width, height)
    defaults: dict[str, Any] = {}
    if unit:
        defaults["unit"] = unit
    if links:
        defaults["links"] = links
    return {
        "id": panel_id,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": position,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": {},
        "targets": [
            {
                "refId": "A",
                "datasource": DATASOURCE,
                "editorMode": "code",
                "format": fmt,
                "rawQuery": True,
                "rawSql": " ".join(sql.split()),
            }
        ],
    }


def dashboard(
    uid: str,
    title: str,
    panels: list[dict[str, Any]],
    variables: list[dict[str, Any]],
    *,
    links: list[dict[str, Any]] | None = None,
    time_from: str = "now-6h",
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "tags": ["spanline"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": time_from, "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": links or [],
        "panels": panels,
    }


def agent_variable() -> dict[str, Any]:
    return {
        "name": "agent",
        "label": "Agent",
        "type": "query",
        "datasource": DATASOURCE,
        "query": "SELECT DISTINCT agent FROM spans WHERE $__timeFilter(start_time) ORDER BY 1",
        "definition": "SELECT DISTINCT agent FROM spans WHERE $__timeFilter(start_time) ORDER BY 1",
        "refresh": 2,
        "multi": False,
        "includeAll": False,
        "sort": 1,
    }


def text_variable(name: str, label: str, default: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "textbox",
        "query": default,
        "current": {"text": default, "value": default},
        "options": [{"selected": True, "text": default, "value": default}],
    }


def fleet_dashboard() -> dict[str, Any]:
    layout = Layout()
    panels = [
        panel(layout, "Spans per second", """
            SELECT $__timeGroupAlias(start_time, $__interval),
                   count(*) * 1000.0 / $__interval_ms AS spans_per_second
            FROM spans WHERE $__timeFilter(start_time) GROUP BY 1 ORDER BY 1""",
            unit="reqps", description="Stored spans by start time, all agents."),
        panel(layout, "Cost per hour by model", """
            SELECT $__timeGroupAlias(start_time, $__interval),
                   coalesce(model, 'unknown') AS metric,
                   sum(cost_usd) * 3600000.0 / $__interval_ms AS usd_per_hour
            FROM spans WHERE $__timeFilter(start_time) AND cost_usd IS NOT NULL
            GROUP BY 1, 2 ORDER BY 1""",
            unit="currencyUSD",
            description="Priced spans only; unpriced spans (cost_usd NULL) are in 'Unpriced LLM spans'."),
        panel(layout, "Tokens per interval", """
            SELECT $__timeGroupAlias(start_time, $__interval),
                   sum(input_tokens) AS input, sum(cache_read_tokens) AS cache_read,
                   sum(coalesce(cache_write_tokens, 0) + coalesce(cache_write_1h_tokens, 0)) AS cache_write,
                   sum(output_tokens) AS output, sum(reasoning_tokens) AS reasoning
            FROM spans WHERE $__timeFilter(start_time) AND kind = 'llm' GROUP BY 1 ORDER BY 1""",
            unit="short",
            description="Token classes are disjoint: input excludes cache reads and writes, output excludes reasoning."),
        panel(layout, "Error rate", """
            SELECT $__timeGroupAlias(start_time, $__interval),
                   avg(CASE WHEN status = 'error' THEN 1.0 ELSE 0.0 END) AS error_ratio
            FROM spans WHERE $__timeFilter(start_time) GROUP BY 1 ORDER BY 1""",
            unit="percentunit", description="Share of spans with status 'error'."),
        panel(layout, "Replans", """
            SELECT $__timeGroupAlias(start_time, $__interval), count(*) AS replans
            FROM (SELECT start_time,
                         row_number() OVER (PARTITION BY run_id ORDER BY start_time) AS plan_number
                  FROM spans WHERE $__timeFilter(start_time) AND kind = 'plan') AS plans
            WHERE plan_number > 1 GROUP BY 1 ORDER BY 1""",
            unit="short",
            description="Plan spans after the first plan of their run. A run that started before the "
            "time range counts its first visible plan as the initial one."),
        panel(layout, "p95 step latency by kind", """
            SELECT $__timeGroupAlias(start_time, $__interval), kind AS metric,
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY """ + DURATION_S + """) AS p95_seconds
            FROM spans WHERE $__timeFilter(start_time) AND kind <> 'agent'
            GROUP BY 1, 2 ORDER BY 1""",
            unit="s", description="95th percentile of span duration per bucket, run-level spans excluded."),
        panel(layout, "Unpriced LLM spans", """
            SELECT $__timeGroupAlias(start_time, $__interval), coalesce(provider, 'unknown') AS metric,
                   count(*) AS unpriced_spans
            FROM spans WHERE $__timeFilter(start_time) AND kind = 'llm' AND cost_usd IS NULL
            GROUP BY 1, 2 ORDER BY 1""",
            unit="short", description="LLM spans whose model had no price; sync prices, then reprice."),
        panel(layout, "Ingest latency p95", """
            SELECT $__timeGroupAlias(start_time, $__interval),
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM ingest_time - end_time))
                     AS p95_seconds
            FROM spans WHERE $__timeFilter(start_time) GROUP BY 1 ORDER BY 1""",
            unit="s", description="Span end to row insert, from the ingest_time column."),
        panel(layout, "Top expensive runs", """
            SELECT run_id, agent, min(start_time) AS started, max(end_time) AS ended,
                   sum(cost_usd) AS cost_usd, count(*) AS spans,
                   count(*) FILTER (WHERE kind = 'llm' AND cost_usd IS NULL) AS unpriced_llm_spans,
                   count(*) FILTER (WHERE status = 'error') AS errors
            FROM spans WHERE $__timeFilter(start_time)
            GROUP BY run_id, agent ORDER BY cost_usd DESC NULLS LAST LIMIT 20""",
            kind="table", fmt="table", width=24, height=10,
            description="The 20 runs with the highest priced cost in the time range; click a run id to open it.",
            overrides=[{
                "matcher": {"id": "byName", "options": "run_id"},
                "properties": [{"id": "links", "value": [{"title": "Open run", "url": RUN_LINK}]}],
            }, {
                "matcher": {"id": "byName", "options": "cost_usd"},
                "properties": [{"id": "unit", "value": "currencyUSD"}],
            }]),
    ]
    return dashboard("spanline-fleet", "Spanline / Fleet", panels, [])


def agent_dashboard() -> dict[str, Any]:
    layout = Layout()
    agent_filter = "agent = '$agent'"
    panels = [
        panel(layout, "Runs started", """
            SELECT $__timeGroupAlias(first_start, $__interval), count(*) AS runs
            FROM (SELECT run_id, min(start_time) AS first_start FROM spans
                  WHERE $__timeFilter(start_time) AND """ + agent_filter + """ GROUP BY run_id) AS runs
            GROUP BY 1 ORDER BY 1""", unit="short", width=8),
        panel(layout, "Cost per hour", """
            SELECT $__timeGroupAlias(start_time, $__interval),
                   sum(cost_usd) * 3600000.0 / $__interval_ms AS usd_per_hour
            FROM spans WHERE $__timeFilter(start_time) AND """ + agent_filter + """
            GROUP BY 1 ORDER BY 1""", unit="currencyUSD", width=8),
        panel(layout, "Error rate", """
            SELECT $__timeGroupAlias(start_time, $__interval),
                   avg(CASE WHEN status = 'error' THEN 1.0 ELSE 0.0 END) AS error_ratio
            FROM spans WHERE $__timeFilter(start_time) AND """ + agent_filter + """
            GROUP BY 1 ORDER BY 1""", unit="percentunit", width=8),
        panel(layout, "p95 step latency by kind", """
            SELECT $__timeGroupAlias(start_time, $__interval), kind AS metric,
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY """ + DURATION_S + """) AS p95_seconds
            FROM spans WHERE $__timeFilter(start_time) AND """ + agent_filter + """ AND kind <> 'agent'
            GROUP BY 1, 2 ORDER BY 1""", unit="s"),
        panel(layout, "Tokens by model", """
            SELECT $__timeGroupAlias(start_time, $__interval), coalesce(model, 'unknown') AS metric,
                   sum(coalesce(input_tokens, 0) + coalesce(cache_read_tokens, 0)
                       + coalesce(cache_write_tokens, 0) + coalesce(cache_write_1h_tokens, 0)
                       + coalesce(output_tokens, 0) + coalesce(reasoning_tokens, 0)) AS tokens
            FROM spans WHERE $__timeFilter(start_time) AND """ + agent_filter + """ AND kind = 'llm'
            GROUP BY 1, 2 ORDER BY 1""", unit="short",
            description="Unknown (NULL) token counts add nothing; they are not zero in the data."),
        panel(layout, "Tool calls", """
            SELECT tool_name, count(*) AS calls,
                   count(*) FILTER (WHERE status = 'error') AS errors,
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY """ + DURATION_S + """) AS p95_seconds
            FROM spans WHERE $__timeFilter(start_time) AND """ + agent_filter + """ AND tool_name IS NOT NULL
            GROUP BY tool_name ORDER BY calls DESC LIMIT 50""", kind="table", fmt="table"),
        panel(layout, "Recent runs", """
            SELECT run_id, min(start_time) AS started, max(end_time) AS ended, max(step) AS steps,
                   sum(cost_usd) AS cost_usd, count(*) FILTER (WHERE status = 'error') AS errors
            FROM spans WHERE $__timeFilter(start_time) AND """ + agent_filter + """
            GROUP BY run_id ORDER BY started DESC LIMIT 50""", kind="table", fmt="table",
            overrides=[{
                "matcher": {"id": "byName", "options": "run_id"},
                "properties": [{"id": "links", "value": [{"title": "Open run", "url": RUN_LINK}]}],
            }]),
    ]
    return dashboard("spanline-agent", "Spanline / Agent", panels, [agent_variable()])


def run_dashboard() -> dict[str, Any]:
    layout = Layout()
    run_filter = "run_id = '$run_id'"
    panels = [
        panel(layout, "Run summary", """
            SELECT min(agent) AS agent, max(step) AS steps, sum(cost_usd) AS cost_usd,
                   count(*) FILTER (WHERE status = 'error') AS errors,
                   extract(epoch FROM max(end_time) - min(start_time)) AS duration_seconds
            FROM spans WHERE $__timeFilter(start_time) AND """ + run_filter,
            kind="table", fmt="table", width=24, height=4),
        panel(layout, "Steps", """
            SELECT step, kind, name, status, provider, model, tool_name, start_time,
                   """ + DURATION_S + """ AS duration_seconds,
                   input_tokens, cache_read_tokens, output_tokens, reasoning_tokens,
                   cost_usd, pricing_status, error_message
            FROM spans WHERE $__timeFilter(start_time) AND """ + run_filter + """
            ORDER BY step, start_time""", kind="table", fmt="table", width=24, height=12),
        panel(layout, "Cost by step", """
            SELECT step::text AS step, sum(cost_usd) AS cost_usd
            FROM spans WHERE $__timeFilter(start_time) AND """ + run_filter + """
            GROUP BY spans.step ORDER BY spans.step""", kind="barchart", fmt="table", unit="currencyUSD"),
        panel(layout, "Step duration", """
            SELECT step::text AS step, sum(""" + DURATION_S + """) AS duration_seconds
            FROM spans WHERE $__timeFilter(start_time) AND """ + run_filter + """ AND kind <> 'agent'
            GROUP BY spans.step ORDER BY spans.step""", kind="barchart", fmt="table", unit="s"),
        panel(layout, "Frames", """
            SELECT seq, step, kind, capture_time, content_type, size_bytes, width, height, sha256
            FROM frames WHERE $__timeFilter(capture_time) AND """ + run_filter + """
            ORDER BY seq""", kind="table", fmt="table", width=24, height=8,
            links=[{"title": "Open in the replay viewer", "url": "${replay_url}/runs/${run_id}",
                    "targetBlank": True}]),
    ]
    replay_link = {
        "title": "Replay this run",
        "type": "link",
        "url": "${replay_url}/runs/${run_id}",
        "targetBlank": True,
        "icon": "external link",
    }
    variables = [
        text_variable("run_id", "Run id", ""),
        text_variable("replay_url", "Replay service URL", "http://127.0.0.1:18080"),
    ]
    return dashboard("spanline-run", "Spanline / Run", panels, variables, links=[replay_link],
                     time_from="now-24h")


def build_all() -> dict[str, dict[str, Any]]:
    """Return every dashboard by file name."""
    return {
        "fleet.json": fleet_dashboard(),
        "agent.json": agent_dashboard(),
        "run.json": run_dashboard(),
    }


def render(dashboard_json: dict[str, Any]) -> str:
    return json.dumps(dashboard_json, indent=2, sort_keys=False) + "\n"


def main() -> None:
    DASHBOARD_DIR.mkdir(parents=True, exist_ok=True)
    for name, dashboard_json in build_all().items():
        (DASHBOARD_DIR / name).write_text(render(dashboard_json), encoding="utf-8")
        print(f"wrote {DASHBOARD_DIR / name}")


if __name__ == "__main__":
    main()
