"""Check the Grafana dashboards: their structure offline, and every panel's SQL against TimescaleDB.

The SQL tests expand Grafana's PostgreSQL macros with `expand_macros`, insert a small hand-written
run inside a transaction, run each panel's query and roll the transaction back, so the database
keeps no test rows.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
GRAFANA_DIR = REPO_ROOT / "deploy" / "grafana"
DASHBOARD_DIR = GRAFANA_DIR / "dashboards"
DATASOURCE_UID = "spanline-tsdb"

TEST_AGENT = "deploy-test-agent"
TEST_RUN_ID = "deploy-test-run-0001"
INTERVAL_S = 60

# Columns each panel must return, by dashboard file and panel title. Time-series panels name only
# their value columns here; they must also return "time" first.
EXPECTED_COLUMNS: dict[tuple[str, str], list[str]] = {
    ("fleet.json", "Spans per second"): ["spans_per_second"],
    ("fleet.json", "Cost per hour by model"): ["metric", "usd_per_hour"],
    ("fleet.json", "Tokens per interval"): ["input", "cache_read", "cache_write", "output", "reasoning"],
    ("fleet.json", "Error rate"): ["error_ratio"],
    ("fleet.json", "Replans"): ["replans"],
    ("fleet.json", "p95 step latency by kind"): ["metric", "p95_seconds"],
    ("fleet.json", "Unpriced LLM spans"): ["metric", "unpriced_spans"],
    ("fleet.json", "Ingest latency p95"): ["p95_seconds"],
    ("fleet.json", "Top expensive runs"): [
        "run_id", "agent", "started", "ended", "cost_usd", "spans", "unpriced_llm_spans", "errors",
    ],
    ("agent.json", "Runs started"): ["runs"],
    ("agent.json", "Cost per hour"): ["usd_per_hour"],
    ("agent.json", "Error rate"): ["error_ratio"],
    ("agent.json", "p95 step latency by kind"): ["metric", "p95_seconds"],
    ("agent.json", "Tokens by model"): ["metric", "tokens"],
    ("agent.json", "Tool calls"): ["tool_name", "calls", "errors", "p95_seconds"],
    ("agent.json", "Recent runs"): ["run_id", "started", "ended", "steps", "cost_usd", "errors"],
    ("run.json", "Run summary"): ["agent", "steps", "cost_usd", "errors", "duration_seconds"],
    ("run.json", "Steps"): [
        "step", "kind", "name", "status", "provider", "model", "tool_name", "start_time",
        "duration_seconds", "input_tokens", "cache_read_tokens", "output_tokens", "reasoning_tokens",
        "cost_usd", "pricing_status", "error_message",
    ],
    ("run.json", "Cost by step"): ["step", "cost_usd"],
    ("run.json", "Step duration"): ["step", "duration_seconds"],
    ("run.json", "Frames"): [
        "seq", "step", "kind", "capture_time", "content_type", "size_bytes", "width", "height", "sha256",
    ],
}

# Panels whose fixture run lacks the rows they count, so they may return no rows.
MAY_BE_EMPTY = {("fleet.json", "Unpriced LLM spans")}


# --- macro expansion ---------------------------------------------------------------------------


def _grafana_interval(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def expand_macros(
    sql: str, time_from: datetime, time_to: datetime, interval_s: int, variables: dict[str, str]
) -> str:
    """Expand Grafana PostgreSQL data source macros and template variables in `sql`.

    Covers what the Spanline dashboards use, the way Grafana 11/12 emits it with `timescaledb:
    true`: $__timeFilter(col) becomes `col BETWEEN '<from>' AND '<to>'`, $__timeFrom() and
    $__timeTo() become quoted RFC 3339 timestamps, $__timeGroup(col, interval) becomes
    `time_bucket('<n>s', col)` and $__timeGroupAlias adds `AS "time"`. $__interval becomes a
    Grafana duration such as 1m and $__interval_ms a whole number of milliseconds. $name and
    ${name} are replaced by `variables[name]` as raw text, like a single-value variable.
    """
    start = f"'{time_from.astimezone(timezone.utc).isoformat()}'"
    end = f"'{time_to.astimezone(timezone.utc).isoformat()}'"
    bucket = f"'{interval_s}s'"

    def time_group(match: re.Match[str], alias: bool) -> str:
        column = match.group(1).strip()
        expression = f"time_bucket({bucket}, {column})"
        return f'{expression} AS "time"' if alias else expression

    sql = re.sub(r"\$__timeFilter\(([^)]*)\)", lambda m: f"{m.group(1).strip()} BETWEEN {start} AND {end}", sql)
    sql = sql.replace("$__timeFrom()", start).replace("$__timeTo()", end)
    sql = re.sub(r"\$__timeGroupAlias\(([^,]+),[^)]*\)", lambda m: time_group(m, alias=True), sql)
    sql = re.sub(r"\$__timeGroup\(([^,]+),[^)]*\)", lambda m: time_group(m, alias=False), sql)
    # The longer name first, so $__interval does not eat the prefix of $__interval_ms.
    sql = sql.replace("$__interval_ms", str(interval_s * 1000))
    sql = sql.replace("$__interval", _grafana_interval(interval_s))
    for name, value in variables.items():
        sql = sql.replace("${" + name + "}", value)
        sql = re.sub(r"\$" + re.escape(name) + r"\b", lambda _: value, sql)
    unexpanded = re.findall(r"\$\{?\w+", sql)
    if unexpanded:
        raise ValueError(f"unexpanded Grafana macros or variables {unexpanded} in: {sql}")
    return sql


def test_expand_macros_time_filter() -> None:
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    sql = expand_macros("WHERE $__timeFilter(start_time)", start, start + timedelta(hours=1), 60, {})
    assert sql == "WHERE start_time BETWEEN '2026-01-02T03:04:05+00:00' AND '2026-01-02T04:04:05+00:00'"


def test_expand_macros_group_and_interval() -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    sql = expand_macros(
        "SELECT $__timeGroupAlias(start_time, $__interval), 1000.0 / $__interval_ms WHERE agent = '$agent'",
        start, start, 300, {"agent": "a1"},
    )
    assert sql == "SELECT time_bucket('300s', start_time) AS \"time\", 1000.0 / 300000 WHERE agent = 'a1'"


def test_expand_macros_rejects_unknown_variable() -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="run_id"):
        expand_macros("WHERE run_id = '${run_id}'", start, start, 60, {})


# --- dashboard structure (offline) -------------------------------------------------------------


def _dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARD_DIR.glob("*.json"))}


def _panels() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, dashboard in _dashboards().items():
        for panel in dashboard["panels"]:
            yield name, panel


def test_dashboards_match_generator() -> None:
    spec = importlib.util.spec_from_file_location("build_dashboards", GRAFANA_DIR / "build_dashboards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, dashboard in module.build_all().items():
        committed = (DASHBOARD_DIR / name).read_text()
        assert committed == module.render(dashboard), f"{name} is stale: run deploy/grafana/build_dashboards.py"


def test_dashboards_have_unique_uids_and_panel_ids() -> None:
    dashboards = _dashboards()
    assert set(dashboards) == {"fleet.json", "agent.json", "run.json"}
    uids = [dashboard["uid"] for dashboard in dashboards.values()]
    assert len(uids) == len(set(uids))
    for name, dashboard in dashboards.items():
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), name
        assert isinstance(dashboard["schemaVersion"], int), name


def test_panels_use_provisioned_datasource() -> None:
    for name, panel in _panels():
        assert panel["datasource"]["uid"] == DATASOURCE_UID, f"{name}: {panel['title']}"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE_UID, f"{name}: {panel['title']}"


def test_panels_filter_on_time() -> None:
    for name, panel in _panels():
        for target in panel["targets"]:
            assert "$__timeFilter(" in target["rawSql"], f"{name}: {panel['title']}"


def test_every_panel_has_expected_columns() -> None:
    titles = {(name, panel["title"]) for name, panel in _panels()}
    assert titles == set(EXPECTED_COLUMNS)


def test_variables_per_dashboard() -> None:
    dashboards = _dashboards()
    assert [v["name"] for v in dashboards["agent.json"]["templating"]["list"]] == ["agent"]
    assert [v["name"] for v in dashboards["run.json"]["templating"]["list"]] == ["run_id", "replay_url"]


def test_run_dashboard_links_to_replay() -> None:
    run = _dashboards()["run.json"]
    assert any(link["url"] == "${replay_url}/runs/${run_id}" for link in run["links"])


def test_datasource_provisioning_is_timescaledb() -> None:
    import yaml

    provisioning = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "spanline.yaml").read_text())
    datasource = provisioning["datasources"][0]
    assert datasource["uid"] == DATASOURCE_UID
    assert datasource["type"] == "grafana-postgresql-datasource"
    assert datasource["jsonData"]["timescaledb"] is True


# --- panel SQL against the live database -------------------------------------------------------


@pytest.fixture(scope="module")
def database() -> Iterator[Any]:
    """Yield a connection inside a transaction holding the fixture run; it is rolled back after."""
    psycopg = pytest.importorskip("psycopg")
    from pipeline.config import Settings

    settings = Settings.from_env()
    try:
        connection = psycopg.connect(settings.database_dsn.reveal(), connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.skip(f"TimescaleDB is not reachable with SPANLINE_DATABASE_DSN ({error}); run `spanline stack up`")
    with connection:
        present = connection.execute("SELECT to_regclass('spans'), to_regclass('frames')").fetchone()
        if None in present:
            pytest.skip("tables spans and frames are absent; apply the migrations first")
        _insert_fixture_run(connection)
        yield connection
        connection.rollback()


def _insert_fixture_run(connection: Any) -> None:
    base = datetime.now(timezone.utc) - timedelta(minutes=10)
    rows = [
        # step, kind, name, status, model, tool_name, seconds from base, duration, cost
        (1, "plan", "plan", "ok", None, None, 0, 1.0, None),
        (2, "llm", "chat", "ok", "test-model", None, 2, 3.0, 0.012),
        (3, "tool", "search", "error", None, "search", 6, 0.5, None),
        (4, "plan", "replan", "ok", None, None, 7, 1.0, None),
        (5, "llm", "chat", "ok", "test-model", None, 9, 2.0, 0.008),
    ]
    with connection.cursor() as cursor:
        for step, kind, name, status, model, tool, offset_s, duration_s, cost in rows:
            start = base + timedelta(seconds=offset_s)
            is_llm = kind == "llm"
            cursor.execute(
                "INSERT INTO spans (start_time, end_time, run_id, agent, trace_id, span_id, step, kind,"
                " name, status, provider, model, input_tokens, output_tokens, tool_name, cost_usd,"
                " pricing_status)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    start, start + timedelta(seconds=duration_s), TEST_RUN_ID, TEST_AGENT,
                    "0" * 32, f"{step:016x}", step, kind, name, status,
                    "test-provider" if is_llm else None, model,
                    1200 if is_llm else None, 300 if is_llm else None, tool, cost,
                    "priced" if cost is not None else "unpriced",
                ),
            )
        cursor.execute(
            "INSERT INTO frames (capture_time, run_id, span_id, step, seq, kind, content_type, sha256,"
            " size_bytes, object_key, width, height)"
            " VALUES (%s, %s, %s, 3, 0, 'viewport', 'image/png', %s, 2048, %s, 1280, 720)",
            (base + timedelta(seconds=6), TEST_RUN_ID, f"{3:016x}", "a" * 64, "frames/sha256/aa/" + "a" * 64),
        )


def _panel_cases() -> list[Any]:
    cases = []
    for name, panel in _panels():
        cases.append(pytest.param(name, panel, id=f"{name}:{panel['title']}"))
    return cases


@pytest.mark.integration
@pytest.mark.parametrize(("dashboard", "panel"), _panel_cases())
def test_panel_sql_returns_columns(database: Any, dashboard: str, panel: dict[str, Any]) -> None:
    now = datetime.now(timezone.utc)
    variables = {"agent": TEST_AGENT, "run_id": TEST_RUN_ID, "replay_url": "http://127.0.0.1:18080"}
    expected = EXPECTED_COLUMNS[(dashboard, panel["title"])]
    for target in panel["targets"]:
        sql = expand_macros(target["rawSql"], now - timedelta(hours=1), now + timedelta(minutes=1),
                            INTERVAL_S, variables)
        with database.cursor() as cursor:
            cursor.execute("SAVEPOINT panel")
            try:
                cursor.execute(sql)
            except Exception as error:
                cursor.execute("ROLLBACK TO SAVEPOINT panel")
                pytest.fail(f"{dashboard} / {panel['title']}: {error}\nSQL: {sql}")
            columns = [column.name for column in cursor.description]
            rows = cursor.fetchall()
            cursor.execute("RELEASE SAVEPOINT panel")
        if target["format"] == "time_series":
            assert columns[0] == "time", f"{panel['title']}: first column is {columns[0]}"
            columns = columns[1:]
        assert columns == expected, panel["title"]
        if (dashboard, panel["title"]) not in MAY_BE_EMPTY:
            assert rows, f"{dashboard} / {panel['title']} returned no rows for the fixture run"
