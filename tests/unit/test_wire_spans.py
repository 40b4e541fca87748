"""Span-batch codec: column round trips, column checks and schema evolution."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.wire import (
    SCHEMAS_DIR,
    SPAN_FIELDS,
    SchemaRegistry,
    WireError,
    decode_span_batch,
    encode_span_batch,
)

LONG = st.integers(min_value=-(2**63), max_value=2**63 - 1)
INT = st.integers(min_value=-(2**31), max_value=2**31 - 1)
TOKENS = st.one_of(st.none(), st.integers(min_value=0, max_value=2**40))
TEXT = st.text(max_size=40)
OPTIONAL_TEXT = st.one_of(st.none(), TEXT)
ATTRIBUTES = st.one_of(
    st.just("{}"),
    st.dictionaries(TEXT, st.one_of(st.integers(), TEXT, st.none()), max_size=4).map(
        lambda value: json.dumps(value, ensure_ascii=False)
    ),
)

ITEM_STRATEGIES = {
    "trace_id": st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
    "span_id": st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
    "parent_span_id": TEXT,
    "step": INT,
    "kind": st.sampled_from(["llm", "tool", "browser", "inbox", "plan", "agent"]),
    "name": TEXT,
    "start_ns": LONG,
    "end_ns": LONG,
    "status": st.sampled_from(["ok", "error", "unset"]),
    "error_message": OPTIONAL_TEXT,
    "provider": OPTIONAL_TEXT,
    "model": OPTIONAL_TEXT,
    "input_tokens": TOKENS,
    "cache_read_tokens": TOKENS,
    "cache_write_tokens": TOKENS,
    "cache_write_1h_tokens": TOKENS,
    "output_tokens": TOKENS,
    "reasoning_tokens": TOKENS,
    "audio_input_tokens": TOKENS,
    "audio_output_tokens": TOKENS,
    "usage_source": OPTIONAL_TEXT,
    "reported_cost_usd": st.one_of(st.none(), st.floats(allow_nan=False)),
    "tool_name": OPTIONAL_TEXT,
    "tool_args": OPTIONAL_TEXT,
    "attributes": ATTRIBUTES,
}


@st.composite
def span_columns(draw):
    size = draw(st.integers(min_value=0, max_value=25))
    return {
        name: draw(st.lists(strategy, min_size=size, max_size=size))
        for name, strategy in ITEM_STRATEGIES.items()
    }


def minimal_columns(size: int) -> dict[str, list]:
    return {
        "trace_id": ["a" * 32] * size,
        "span_id": [f"{index:016x}" for index in range(size)],
        "step": list(range(1, size + 1)),
        "kind": ["tool"] * size,
        "name": [f"call {index}" for index in range(size)],
        "start_ns": [1_700_000_000_000_000_000 + index for index in range(size)],
        "end_ns": [1_700_000_000_000_000_100 + index for index in range(size)],
    }


def test_strategies_cover_every_span_field():
    assert set(ITEM_STRATEGIES) == set(SPAN_FIELDS)


@settings(max_examples=200, deadline=None)
@given(run_id=TEXT, agent=TEXT, sdk=TEXT, columns=span_columns())
def test_span_batch_round_trips(run_id, agent, sdk, columns):
    batch = decode_span_batch(encode_span_batch(run_id, agent, columns, sdk=sdk))

    assert batch.run_id == run_id
    assert batch.agent == agent
    assert batch.sdk == sdk
    assert batch.size == len(columns["span_id"])
    assert batch.columns == columns


def test_none_tokens_stay_none_not_zero():
    columns = minimal_columns(2)
    columns["input_tokens"] = [None, 0]
    columns["output_tokens"] = [7, None]

    batch = decode_span_batch(encode_span_batch("r", "a", columns))

    assert batch.columns["input_tokens"] == [None, 0]
    assert batch.columns["output_tokens"] == [7, None]


def test_missing_optional_columns_get_defaults():
    batch = decode_span_batch(encode_span_batch("r", "a", minimal_columns(3)))

    assert batch.columns["parent_span_id"] == ["", "", ""]
    assert batch.columns["status"] == ["unset", "unset", "unset"]
    assert batch.columns["attributes"] == ["{}", "{}", "{}"]
    assert batch.columns["model"] == [None, None, None]
    assert batch.columns["reasoning_tokens"] == [None, None, None]
    assert list(batch.columns) == list(SPAN_FIELDS)


def test_empty_batch_round_trips():
    batch = decode_span_batch(encode_span_batch("r", "a", minimal_columns(0)))

    assert batch.size == 0
    assert all(values == [] for values in batch.columns.values())


def test_unequal_columns_rejected_on_encode():
    columns = minimal_columns(3)
    columns["name"] = ["only one"]

    with pytest.raises(WireError) as caught:
        encode_span_batch("run-7", "a", columns)

    assert caught.value.reason == "invalid_batch"
    assert "run-7" in str(caught.value)


def test_unequal_columns_rejected_on_decode():
    # Bypass the encoder's check to produce bytes a buggy writer in another language could send.
    registry = SchemaRegistry.from_directory(SCHEMAS_DIR)
    record = {"run_id": "r", "agent": "a", "sdk": "other-writer"}
    record.update({name: [None, None] for name in SPAN_FIELDS})
    record.update(minimal_columns(2))
    record["parent_span_id"] = ["", ""]
    record["status"] = ["ok", "ok"]
    record["attributes"] = ["{}", "{}"]
    record["name"] = ["one", "two", "three"]
    value = registry.write("spanline.SpanBatch", record)

    with pytest.raises(WireError) as caught:
        decode_span_batch(value, registry=registry)

    assert caught.value.reason == "invalid_batch"
    assert "name has 3" in str(caught.value)


def test_unknown_column_rejected():
    columns = minimal_columns(1)
    columns["inputtokens"] = [3]

    with pytest.raises(WireError) as caught:
        encode_span_batch("r", "a", columns)

    assert caught.value.reason == "invalid_batch"
    assert "inputtokens" in str(caught.value)


def test_missing_required_column_rejected():
    columns = minimal_columns(1)
    del columns["start_ns"]

    with pytest.raises(WireError) as caught:
        encode_span_batch("r", "a", columns)

    assert caught.value.reason == "invalid_batch"
    assert "start_ns" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "bad_value"),
    [("kind", "llmm"), ("start_ns", "yesterday"), ("input_tokens", 2**70), ("status", None)],
)
def test_value_outside_schema_rejected(name, bad_value):
    columns = minimal_columns(1)
    columns[name] = [bad_value]

    with pytest.raises(WireError) as caught:
        encode_span_batch("r", "a", columns)

    assert caught.value.reason == "invalid_batch"


# Schema evolution: a later version adds a per-span field and a batch field, both with defaults.


def load_current_schema() -> dict:
    return json.loads((SCHEMAS_DIR / "span_batch.avsc").read_text())


def newer_schema() -> dict:
    schema = copy.deepcopy(load_current_schema())
    schema["fields"].insert(3, {"name": "host", "type": "string", "default": "", "doc": "Writer host."})
    schema["fields"].append(
        {
            "name": "time_to_first_token_ns",
            "type": {"type": "array", "items": ["null", "long"]},
            "default": [],
            "doc": "Nanoseconds until the first output token; null when unknown.",
        }
    )
    schema["fields"].append(
        {
            "name": "region",
            "type": {"type": "array", "items": "string"},
            "default": [],
            "item_default": "unknown",
            "doc": "Region of the writer.",
        }
    )
    return schema


def registries() -> tuple[SchemaRegistry, SchemaRegistry]:
    old = SchemaRegistry()
    old.add(load_current_schema(), current=True)
    new = SchemaRegistry()
    new.add(newer_schema(), current=True)
    new.add(load_current_schema(), current=False)
    return old, new


def test_old_writer_decodes_with_new_fields_filled():
    old, new = registries()
    value = encode_span_batch("r", "a", minimal_columns(3), registry=old)

    batch = decode_span_batch(value, registry=new)

    assert batch.size == 3
    assert batch.columns["time_to_first_token_ns"] == [None, None, None]
    assert batch.columns["region"] == ["unknown"] * 3
    assert batch.columns["name"] == ["call 0", "call 1", "call 2"]
    assert set(batch.columns) == set(SPAN_FIELDS) | {"time_to_first_token_ns", "region"}


def test_new_writer_decodes_with_new_registry():
    _old, new = registries()
    columns = minimal_columns(2)
    columns["time_to_first_token_ns"] = [5, None]

    batch = decode_span_batch(encode_span_batch("r", "a", columns, registry=new), registry=new)

    assert batch.columns["time_to_first_token_ns"] == [5, None]
    assert batch.columns["region"] == ["unknown", "unknown"]


def test_new_writer_is_unknown_to_old_reader():
    old, new = registries()
    value = encode_span_batch("r", "a", minimal_columns(1), registry=new)

    with pytest.raises(WireError) as caught:
        decode_span_batch(value, registry=old)

    assert caught.value.reason == "unknown_schema"


def test_registry_rejects_two_current_versions():
    registry = SchemaRegistry()
    registry.add(load_current_schema(), current=True)

    with pytest.raises(ValueError, match="two current schemas"):
        registry.add(newer_schema(), current=True)
