"""Single-object framing: fingerprints, headers and the error reasons of undecodable bytes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipeline.wire import (
    MAGIC,
    REASONS,
    SCHEMAS_DIR,
    Frame,
    WireError,
    decode_frame,
    decode_span_batch,
    default_registry,
    encode_frame,
    encode_span_batch,
)
from pipeline.wire.framing import HEADER_SIZE, schema_fingerprint

ARCHITECTURE_DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"

# Field names as docs/architecture.md lists them; workers and the database use the same names.
EXPECTED_SPAN_BATCH_FIELDS = [
    "run_id", "agent", "sdk", "trace_id", "span_id", "parent_span_id", "step", "kind", "name",
    "start_ns", "end_ns", "status", "error_message", "provider", "model", "input_tokens",
    "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "output_tokens",
    "reasoning_tokens", "audio_input_tokens", "audio_output_tokens", "usage_source",
    "reported_cost_usd", "tool_name", "tool_args", "attributes",
]  # fmt: skip
EXPECTED_FRAME_FIELDS = [
    "run_id", "span_id", "step", "seq", "capture_ns", "kind", "content_type", "data", "sha256",
    "width", "height",
]  # fmt: skip


def crc64_avro(data: bytes) -> int:
    """Compute the Avro specification's 64-bit Rabin fingerprint, written from the spec's algorithm."""
    empty = 0xC15D213AA4D7A795
    table = []
    for index in range(256):
        value = index
        for _ in range(8):
            value = (value >> 1) ^ (empty & -(value & 1))
        table.append(value)
    result = empty
    for byte in data:
        result = (result >> 8) ^ table[(result ^ byte) & 0xFF]
    return result


def small_batch() -> bytes:
    return encode_span_batch(
        "run-1",
        "agent-a",
        {
            "trace_id": ["0" * 32],
            "span_id": ["1" * 16],
            "step": [1],
            "kind": ["llm"],
            "name": ["chat"],
            "start_ns": [10],
            "end_ns": [20],
            "tool_args": ['{"q": "x"'],
        },
    )


def small_frame() -> bytes:
    return encode_frame(
        Frame.build("run-1", b"\x89PNG-bytes", step=1, seq=0, capture_ns=5, content_type="image/png")
    )


def test_fingerprint_matches_spec_vector_for_null():
    assert schema_fingerprint("null") == (7195948357588979594).to_bytes(8, "little")


@pytest.mark.parametrize("filename", ["span_batch.avsc", "frame.avsc"])
def test_fingerprint_matches_reference_crc64(filename):
    from fastavro.schema import to_parsing_canonical_form

    schema = json.loads((SCHEMAS_DIR / filename).read_text())
    canonical = to_parsing_canonical_form(schema).encode()

    assert schema_fingerprint(schema) == crc64_avro(canonical).to_bytes(8, "little")


def test_header_is_magic_then_fingerprint():
    value = small_batch()
    schema = default_registry().current("spanline.SpanBatch")

    assert value[:2] == b"\xc3\x01"
    assert value[2:HEADER_SIZE] == schema.fingerprint
    assert MAGIC == b"\xc3\x01"


@pytest.mark.parametrize(
    ("filename", "expected"),
    [("span_batch.avsc", EXPECTED_SPAN_BATCH_FIELDS), ("frame.avsc", EXPECTED_FRAME_FIELDS)],
)
def test_schema_field_names_match_architecture(filename, expected):
    schema = json.loads((SCHEMAS_DIR / filename).read_text())

    assert [field["name"] for field in schema["fields"]] == expected


@pytest.mark.parametrize("filename", ["span_batch.avsc", "frame.avsc"])
def test_schema_documents_every_field(filename):
    schema = json.loads((SCHEMAS_DIR / filename).read_text())

    assert schema.get("doc")
    undocumented = [field["name"] for field in schema["fields"] if not field.get("doc")]
    assert undocumented == []


def test_architecture_doc_names_every_span_field():
    if not ARCHITECTURE_DOC.exists():
        pytest.skip(f"{ARCHITECTURE_DOC} not found")
    text = ARCHITECTURE_DOC.read_text()
    for name in EXPECTED_SPAN_BATCH_FIELDS:
        assert re.search(rf"`{name}`", text), name


def test_token_docs_state_exclusions_and_unknown():
    schema = json.loads((SCHEMAS_DIR / "span_batch.avsc").read_text())
    docs = {field["name"]: field["doc"] for field in schema["fields"]}

    assert "cache reads and cache writes are NOT included" in docs["input_tokens"]
    assert "reasoning tokens are NOT included" in docs["output_tokens"]
    for name in ("input_tokens", "cache_read_tokens", "output_tokens", "reasoning_tokens"):
        assert "Null means unknown" in docs[name]


@pytest.mark.parametrize("decode", [decode_span_batch, decode_frame])
def test_wrong_magic_is_bad_magic(decode):
    value = b"\x00\x01" + small_batch()[2:]

    with pytest.raises(WireError) as caught:
        decode(value)

    assert caught.value.reason == "bad_magic"
    assert "0001" in str(caught.value)


def test_plain_json_is_bad_magic():
    with pytest.raises(WireError) as caught:
        decode_span_batch(b'{"run_id": "x"}')

    assert caught.value.reason == "bad_magic"


def test_unknown_fingerprint_is_unknown_schema():
    value = MAGIC + b"\xde\xad\xbe\xef\x00\x00\x00\x00" + small_batch()[HEADER_SIZE:]

    with pytest.raises(WireError) as caught:
        decode_span_batch(value)

    assert caught.value.reason == "unknown_schema"
    assert "deadbeef00000000" in str(caught.value)


@pytest.mark.parametrize("make_value, decode", [(small_batch, decode_span_batch), (small_frame, decode_frame)])
def test_every_truncation_is_truncated(make_value, decode):
    value = make_value()
    for length in range(len(value)):
        with pytest.raises(WireError) as caught:
            decode(value[:length])
        assert caught.value.reason == "truncated", (length, str(caught.value))


def test_tombstone_is_truncated():
    with pytest.raises(WireError) as caught:
        decode_span_batch(None)

    assert caught.value.reason == "truncated"


def test_trailing_bytes_are_invalid_batch():
    with pytest.raises(WireError) as caught:
        decode_span_batch(small_batch() + b"\x00")

    assert caught.value.reason == "invalid_batch"


def test_frame_bytes_as_span_batch_are_schema_mismatch():
    with pytest.raises(WireError) as caught:
        decode_span_batch(small_frame())

    assert caught.value.reason == "invalid_batch"
    assert "spanline.Frame" in str(caught.value)


def test_span_batch_bytes_as_frame_are_schema_mismatch():
    with pytest.raises(WireError) as caught:
        decode_frame(small_batch())

    assert caught.value.reason == "invalid_batch"


def test_wire_error_rejects_unknown_reason():
    with pytest.raises(ValueError):
        WireError("oops", "message")


def test_wire_error_reasons_are_fixed():
    assert REASONS == {
        "bad_magic", "unknown_schema", "truncated", "invalid_batch", "sha256_mismatch", "invalid_content_type",
    }
