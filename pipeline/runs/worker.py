"""The runs worker: live run metrics in faust tables, enriched spans and run snapshots.

It consumes the span topic with its own consumer group, so it scales apart from the span sink.
Per `take_events` window it groups messages by run and folds them into that run's RunState. Then
it writes the run_state and run_metrics rows, sends the enriched span batches and the run
snapshot, and updates the run table last, with one changelog message per run per window.
A crash before the table update replays the window. The database rows are upserts, but the
enriched topic may then carry a batch twice, so its consumers deduplicate by span_id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import faust
import psycopg
from faust.types import EventT

from pipeline import metrics
from pipeline.config import Settings
from pipeline.pricing.columns import price_columns
from pipeline.pricing.prices import PriceBook
from pipeline.pricing.stream import attach_price_table
from pipeline.runs.averages import AgentAverage
from pipeline.runs.snapshot import build_snapshot
from pipeline.runs.state import ACTION_KINDS, RunState
from pipeline.stores.run_sink import RunSink
from pipeline.wire.enriched import encode_enriched_batch, encode_run_snapshot
from pipeline.wire.framing import WireError
from pipeline.wire.spans import decode_span_batch
from pipeline.workers.retry import retry_forever, store_or_split

log = logging.getLogger(__name__)

MAX_MESSAGES_PER_WINDOW = 500
WINDOW_S = 0.25
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "abandoned"})
# A run with no new span for this long is marked abandoned.
DEFAULT_IDLE_TIMEOUT_S = 300.0
IDLE_CHECK_INTERVAL_S = 10.0
# A finished run leaves the table this long after its last update (0 keeps every run).
DEFAULT_RETENTION_S = 86_400.0
RETENTION_CHECK_INTERVAL_S = 60.0


def span_topic_partitions(settings: Settings) -> int:
    """Return the span topic's partition count; run tables must have exactly as many."""
    from confluent_kafka.admin import AdminClient

    from pipeline.kafka_clients import librdkafka_config

    admin = AdminClient(librdkafka_config(settings))
    metadata = admin.list_topics(settings.spans_topic, timeout=30)
    topic = metadata.topics.get(settings.spans_topic)
    if topic is None or topic.error is not None or not topic.partitions:
        raise RuntimeError(
            f"span topic {settings.spans_topic!r} not found at {settings.kafka_bootstrap}; "
            "create it with spanline stack topics"
        )
    return len(topic.partitions)


def attach_runs_agent(
    app: faust.App,
    settings: Settings,
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    retention_s: float = DEFAULT_RETENTION_S,
) -> None:
    """Attach the run-metrics agents, tables and timers to the app."""
    partitions = span_topic_partitions(settings)
    spans_topic = app.topic(settings.spans_topic, key_type=bytes, value_type=bytes)
    enriched_topic = app.topic(settings.spans_enriched_topic, key_type=bytes, value_type=bytes)
    runs_topic = app.topic(settings.runs_topic, key_type=bytes, value_type=bytes)
    completed_topic = app.topic(
        f"{app.conf.id}-completed-runs", key_type=bytes, value_type=bytes,
        value_serializer="json", partitions=partitions, internal=True,
    )
    # Each run's table entry goes to the changelog partition of the span message it came from
    # (see _write_run_state), so recovery of a span partition restores exactly its runs.
    run_table = app.Table("run-state", partitions=partitions, key_type=bytes)
    agent_averages = app.GlobalTable("agent-averages", partitions=partitions, key_type=bytes)
    sink = RunSink(settings.database_dsn.reveal())
    # Prices follow the compacted prices topic, so a change reaches this worker without a restart.
    prices = attach_price_table(app, settings)

    @app.agent(spans_topic, name="track-runs")
    async def track_runs(stream: faust.StreamT) -> None:
        app.spanline_ready = True
        async for events in stream.take_events(MAX_MESSAGES_PER_WINDOW, within=WINDOW_S):
            await _apply_window(
                events, run_table, agent_averages, prices.book(), sink, enriched_topic,
                runs_topic, completed_topic,
            )

    @app.agent(completed_topic, name="average-agent-costs")
    async def average_agent_costs(stream: faust.StreamT) -> None:
        async for event in stream.events():
            agent_key = event.message.key
            completed = event.value
            raw = agent_averages.get(agent_key)
            average = AgentAverage.from_dict(raw) if raw else AgentAverage(agent=agent_key.decode())
            if average.add_completed_run(completed["run_id"], completed["cost_usd"]):
                agent_averages[agent_key] = average.to_dict()

    @app.timer(interval=IDLE_CHECK_INTERVAL_S)
    async def mark_abandoned_runs() -> None:
        now_ns = time.time_ns()
        idle_ns = int(idle_timeout_s * 1e9)
        snapshots = []
        for key, raw in list(run_table.items()):
            if raw["status"] != "running" or now_ns - raw["last_update_wall_ns"] < idle_ns:
                continue
            state = RunState.from_dict(raw)
            state.status = "abandoned"
            metrics.RUNS_COMPLETED.labels(status="abandoned").inc()
            state.last_update_wall_ns = now_ns
            snapshots.append((key, state))
        if not snapshots:
            return
        rows = [build_snapshot(state, _average(agent_averages, state), now_ns)
                for _, state in snapshots]
        await _write_snapshots(sink, rows)
        for (key, state), row in zip(snapshots, rows):
            await runs_topic.send(key=key, value=encode_run_snapshot(row))
            _write_run_state(run_table, key, state)
            log.info("run abandoned run_id=%s idle_s=%.0f", state.run_id, idle_timeout_s)

    # Short retentions (in tests) are checked more often, so a run never stays twice as long.
    retention_check_s = max(1.0, min(RETENTION_CHECK_INTERVAL_S, retention_s / 2)) if retention_s > 0 else 3600.0

    @app.timer(interval=retention_check_s)
    async def drop_finished_runs() -> None:
        # NOTE: a span that arrives for a run after it was dropped starts a new state. That
        # state's snapshot replaces the stored run_state row, so keep the retention above the
        # latest a span can arrive.
        entries = list(run_table.data.items())
        for key in expired_runs(entries, time.time_ns(), retention_s):
            raw = run_table.data[key]
            if raw.get("applied_partition") is None:
                log.warning("finished run kept: no span partition recorded run_id=%s", raw.get("run_id"))
                continue
            _delete_run_state(run_table, key, raw["applied_partition"])
            metrics.RUNS_DROPPED.inc()
            log.info("finished run dropped from the run table run_id=%s status=%s", raw["run_id"], raw["status"])


def expired_runs(entries: Iterable[tuple[bytes, Mapping[str, Any]]], now_ns: int, retention_s: float) -> list[bytes]:
    """Return the keys of finished runs whose last update is more than `retention_s` old."""
    if retention_s <= 0:
        return []
    cutoff_ns = now_ns - int(retention_s * 1e9)
    return [
        key for key, raw in entries
        if raw["status"] in TERMINAL_STATUSES and raw["last_update_wall_ns"] < cutoff_ns
    ]


async def _write_snapshots(sink: RunSink, snapshots: list[dict[str, Any]]) -> None:
    """Store run snapshots. When the database rejects their data, store them one by one.

    A snapshot the database rejects (a NUL character in a model name, say) is logged and left
    out, so its run keeps its earlier stored row and the stream goes on.
    """

    async def log_rejected(snapshot: dict[str, Any], error: BaseException) -> None:
        log.error("run snapshot rejected by the database run_id=%s error=%s", snapshot.get("run_id"), error)

    await store_or_split(
        lambda part: _write_with_retry(sink, part), snapshots, log_rejected,
        rejected_data=(psycopg.DataError,), what=f"{len(snapshots)} run snapshots",
    )


async def _write_with_retry(sink: RunSink, snapshots: list[dict[str, Any]]) -> None:
    await retry_forever(
        lambda: asyncio.to_thread(sink.write, snapshots), what=f"{len(snapshots)} run snapshots",
        sink="timescaledb", retry_on=(psycopg.Error,), give_up_on=(psycopg.DataError,),
    )


def _delete_run_state(run_table: Any, key: bytes, partition: int) -> None:
    """Remove a run locally and write a tombstone to its changelog partition.

    The raw serializer sends a null value, which faust's recovery and log compaction treat as a
    deletion. The table's JSON serializer would send the text "null" instead.
    """
    del run_table.data[key]
    run_table.send_changelog(partition, key, None, value_serializer="raw")


def _write_run_state(run_table: Any, key: bytes, state: RunState) -> None:
    """Store a run's state locally and in the changelog partition of the run's span messages.

    faust would pick the changelog partition from the current event, but take_events hands over
    a whole window and the abandoned-run timer has no event at all. Every message of a run comes
    from one span partition (the run id is the key), recorded in `applied_partition`, so
    recovery of that span partition restores exactly its runs.
    """
    value = state.to_dict()
    run_table.data[key] = value
    run_table.send_changelog(state.applied_partition, key, value)


def _observe_steps(columns: Any) -> None:
    for kind, start_ns, end_ns in zip(columns["kind"], columns["start_ns"], columns["end_ns"]):
        if kind in ACTION_KINDS and end_ns >= start_ns:
            metrics.STEP_DURATION.labels(kind=kind).observe((end_ns - start_ns) / 1e9)


def _average(agent_averages: Any, state: RunState) -> float | None:
    raw = agent_averages.get(state.agent.encode())
    if not raw:
        return None
    return AgentAverage.from_dict(raw).average(excluding_run_id=state.run_id)


async def _apply_window(
    events: Sequence[EventT],
    run_table: Any,
    agent_averages: Any,
    book: PriceBook,
    sink: RunSink,
    enriched_topic: faust.TopicT,
    runs_topic: faust.TopicT,
    completed_topic: faust.TopicT,
) -> None:
    by_run: OrderedDict[bytes, list[EventT]] = OrderedDict()
    for event in events:
        by_run.setdefault(event.message.key, []).append(event)

    wall_ns = time.time_ns()
    updated: list[tuple[bytes, RunState]] = []
    enriched: list[tuple[bytes, bytes]] = []
    completed: list[RunState] = []
    for key, run_events in by_run.items():
        raw = run_table.get(key)
        state = RunState.from_dict(raw) if raw else RunState(run_id=key.decode())
        was_terminal = state.status in TERMINAL_STATUSES
        changed = False
        for event in run_events:
            message = event.message
            try:
                batch = decode_span_batch(message.value)
            except WireError:
                # The span worker dead-letters undecodable messages; here they are only skipped.
                continue
            costs = price_columns(batch.columns, book)
            replans_before = state.replan_count
            if not state.apply_batch(
                batch.agent, batch.columns, costs, message.partition, message.offset, wall_ns
            ):
                continue
            changed = True
            _observe_steps(batch.columns)
            metrics.REPLANS.inc(state.replan_count - replans_before)
            header = {
                "run_id": batch.run_id, "agent": batch.agent, "sdk": batch.sdk,
                "run_status": state.status, "run_step_count": state.step_count,
                "run_cost_usd": state.cost_usd,
            }
            enriched.append((key, encode_enriched_batch(header, batch.columns, costs)))
        if not changed:
            continue
        updated.append((key, state))
        if not was_terminal and state.status in TERMINAL_STATUSES:
            completed.append(state)

    if not updated:
        return
    snapshots = [build_snapshot(state, _average(agent_averages, state), wall_ns)
                 for _, state in updated]
    await _write_snapshots(sink, snapshots)
    for key, value in enriched:
        await enriched_topic.send(key=key, value=value)
    for (key, state), snapshot in zip(updated, snapshots):
        await runs_topic.send(key=key, value=encode_run_snapshot(snapshot))
    for state in completed:
        metrics.RUNS_COMPLETED.labels(status=state.status).inc()
        await completed_topic.send(
            key=state.agent.encode(), value={"run_id": state.run_id, "cost_usd": state.cost_usd}
        )
        log.info("run completed run_id=%s status=%s cost_usd=%.6f", state.run_id, state.status,
                 state.cost_usd)
    for key, state in updated:
        _write_run_state(run_table, key, state)
