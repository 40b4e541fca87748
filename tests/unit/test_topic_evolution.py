"""Schema evolution of the output topics: old consumers read new messages, and the reverse.

The rule the output schemas follow: a new version only appends fields at the end of a record, and
every new field has a default. These tests build the next version of each schema that way.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from pipeline.runs.snapshot import build_snapshot
from pipeline.runs.state import RunState
from pipeline.wire.enriched import (
    ENRICHED_SCHEMA_NAME,
    RUN_SNAPSHOT_SCHEMA_NAME,
    decode_enriched_batch,
    decode_run_snapshot,
    encode_enriched_batch,
    encode_run_snapshot,
)
from pipeline.wire.framing import SCHEMAS_DIR, SchemaRegistry, WireError

CURRENT_FILES = {
    ENRICHED_SCHEMA_NAME: "enriched_span_batch.avsc",
    RUN_SNAPSHOT_SCHEMA_NAME: "run_snapshot.avsc",
}


def _current(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS_DIR / CURRENT_FILES[name]).read_text())


def _next_version(name: str) -> dict[str, Any]:
    schema = copy.deepcopy(_current(name))
    schema["fields"].append({
        "name": "region", "type": ["null", "string"], "default": None,
        "doc": "A field a later version might add.",
    })
    if name == ENRICHED_SCHEMA_NAME:
        schema["fields"].append({
            "name": "latency_class", "type": {"type": "array", "items": "string"}, "default": [],
            "doc": "A per-span column a later version might add.",
        })
    return schema


def _registry(current: dict[str, Any], older: list[dict[str, Any]] = ()) -> SchemaRegistry:
    registry = SchemaRegistry()
    registry.add(current, current=True)
    for schema in older:
        registry.add(schema, current=False)
    return registry


def _enriched_record() -> tuple[dict, dict, dict]:
    header = {"run_id": "r-1", "agent": "a", "sdk": "test", "run_status": "running",
              "run_step_count": 2, "run_cost_usd": 0.25}
    columns = {
        "trace_id": ["t" * 32] * 2, "span_id": ["s1", "s2"], "parent_span_id": ["", "s1"],
        "step": [1, 2], "kind": ["llm", "tool"], "name": ["chat", "search"],
        "start_ns": [1, 3], "end_ns": [2, 4], "status": ["ok", "error"],
        "error_message": [None, "boom"], "provider": ["openai", None],
        "model": ["gpt-4o", None], "input_tokens": [10, None], "cache_read_tokens": [None, None],
        "cache_write_tokens": [None, None], "cache_write_1h_tokens": [None, None],
        "output_tokens": [5, None], "reasoning_tokens": [None, None],
        "audio_input_tokens": [None, None], "audio_output_tokens": [None, None],
        "usage_source": ["openai.chat", None], "reported_cost_usd": [None, None],
        "tool_name": [None, "search"], "tool_args": [None, '{"q": 1'], "attributes": ["{}", "{}"],
    }
    costs = {
        "cost_usd": [0.25, None], "computed_cost_usd": [0.25, None],
        "input_cost_usd": [0.2, None], "cache_read_cost_usd": [None, None],
        "cache_write_cost_usd": [None, None], "output_cost_usd": [0.05, None],
        "reasoning_cost_usd": [None, None], "other_cost_usd": [None, None],
        "price_id": ["operator:openai:gpt-4o:x", None],
        "pricing_status": ["priced", "not_applicable"],
    }
    return header, columns, costs


def test_old_consumer_reads_new_enriched_batches() -> None:
    newer = _next_version(ENRICHED_SCHEMA_NAME)
    writer = _registry(newer)
    header, columns, costs = _enriched_record()
    record = {**header, **columns, **costs, "region": "eu", "latency_class": ["fast", "slow"]}
    value = writer.write(ENRICHED_SCHEMA_NAME, record)

    old_consumer = _registry(_current(ENRICHED_SCHEMA_NAME))
    decoded = decode_enriched_batch(value, registry=old_consumer)
    for name, values in {**header, **columns, **costs}.items():
        assert decoded[name] == values, name
    assert "region" not in decoded


def test_strict_reader_rejects_unknown_writer() -> None:
    writer = _registry(_next_version(ENRICHED_SCHEMA_NAME))
    header, columns, costs = _enriched_record()
    value = writer.write(ENRICHED_SCHEMA_NAME, {**header, **columns, **costs, "region": None,
                                                 "latency_class": []})
    old_consumer = _registry(_current(ENRICHED_SCHEMA_NAME))
    with pytest.raises(WireError) as raised:
        decode_enriched_batch(value, registry=old_consumer, accept_newer_writer=False)
    assert raised.value.reason == "unknown_schema"


def test_new_consumer_reads_old_enriched_batches() -> None:
    header, columns, costs = _enriched_record()
    old_writer = _registry(_current(ENRICHED_SCHEMA_NAME))
    value = encode_enriched_batch(header, columns, costs, registry=old_writer)

    new_consumer = _registry(_next_version(ENRICHED_SCHEMA_NAME),
                             older=[_current(ENRICHED_SCHEMA_NAME)])
    decoded = decode_enriched_batch(value, registry=new_consumer)
    assert decoded["region"] is None
    assert decoded["latency_class"] == []
    assert decoded["span_id"] == ["s1", "s2"]
    assert decoded["tool_args"] == [None, '{"q": 1']


def test_run_snapshots_evolve_both_ways() -> None:
    snapshot = build_snapshot(RunState(run_id="r-9", agent="a"), 0.5, wall_ns=10)

    newer = _next_version(RUN_SNAPSHOT_SCHEMA_NAME)
    value_new = _registry(newer).write(RUN_SNAPSHOT_SCHEMA_NAME, {**snapshot, "region": "us"})
    old_consumer = _registry(_current(RUN_SNAPSHOT_SCHEMA_NAME))
    assert decode_run_snapshot(value_new, registry=old_consumer) == snapshot

    value_old = encode_run_snapshot(snapshot, registry=old_consumer)
    new_consumer = _registry(newer, older=[_current(RUN_SNAPSHOT_SCHEMA_NAME)])
    assert decode_run_snapshot(value_old, registry=new_consumer) == {**snapshot, "region": None}
