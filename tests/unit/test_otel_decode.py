"""Decoding of OTLP protobuf and OTLP/JSON exports."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pipeline.otel.decode import OtlpDecodeError, decode_json, decode_otlp, decode_protobuf
from pipeline.otel.samples import otlp_json_export, span_json, to_protobuf

T0 = 1_760_000_000_000_000_000
TRACE = "0af7651916cd43dd8448eb211c80319c"


def sample():
    return otlp_json_export([
        span_json("chat m", TRACE, "00f067aa0ba902b7", T0, T0 + 5, {"n": 2**62, "flag": True, "ratio": 0.5},
                  parent_span_id="00f067aa0ba902b8", kind=3),
    ])


def test_json_hex_ids_and_string_integers():
    traces = decode_json(json.dumps(sample()).encode()).traces
    span = traces.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == TRACE
    assert span.span_id.hex() == "00f067aa0ba902b7"
    assert span.parent_span_id.hex() == "00f067aa0ba902b8"
    assert span.start_time_unix_nano == T0
    assert span.attributes[0].value.int_value == 2**62
    assert span.kind == 3


def test_json_and_protobuf_decode_equal():
    document = sample()
    assert decode_json(json.dumps(document).encode()).traces == decode_protobuf(to_protobuf(document)).traces


def test_export_request_bytes_decode_as_traces_data():
    request = ExportTraceServiceRequest.FromString(to_protobuf(sample()))
    decoded = decode_otlp(request.SerializeToString(), "otlp_proto")
    assert decoded.traces.resource_spans[0].scope_spans[0].spans[0].name == "chat m"


def test_json_snake_case_keys_and_unknown_fields():
    document = {
        "resource_spans": [{"scope_spans": [{"spans": [{
            "trace_id": TRACE, "span_id": "00f067aa0ba902b7", "name": "x",
            "start_time_unix_nano": str(T0), "end_time_unix_nano": str(T0), "future_field": 1,
        }]}]}]
    }
    span = decode_json(json.dumps(document)).traces.resource_spans[0].scope_spans[0].spans[0]
    assert span.name == "x"
    assert span.trace_id.hex() == TRACE


def test_json_bad_span_field_rejects_only_that_span():
    document = sample()
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans.append({**spans[0], "startTimeUnixNano": "soon"})
    decoded = decode_json(json.dumps(document).encode())
    assert list(decoded.undecodable) == [(0, 0, 1)]


def test_json_invalid_utf8_bytes_flag_the_span():
    raw = json.dumps(sample()).encode().replace(b'"chat m"', b'"chat \xff"')
    decoded = decode_json(raw)
    assert decoded.invalid_utf8 == {(0, 0, 0)}
    assert decoded.traces.resource_spans[0].scope_spans[0].spans[0].name == "chat \ufffd"


@pytest.mark.parametrize("data", [b"\xff\xff\xff", b"\x0a\x05\x0a"])
def test_garbage_protobuf_raises(data):
    with pytest.raises(OtlpDecodeError, match="invalid OTLP protobuf"):
        decode_protobuf(data)


@pytest.mark.parametrize("data", [b"not json", b"[1, 2]", b'{"resourceSpans": 3}'])
def test_garbage_json_raises(data):
    with pytest.raises(OtlpDecodeError, match="invalid OTLP/JSON"):
        decode_json(data)


def test_unknown_encoding_raises():
    with pytest.raises(ValueError, match="unknown OTLP encoding 'zipkin'"):
        decode_otlp(b"", "zipkin")
