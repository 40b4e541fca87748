"""Build OTLP exports by hand: for tests, docs and trying a receiver without an instrumented agent.

`otlp_json_export` writes the OTLP/JSON shape (hex ids, 64-bit integers as decimal strings,
enums as integers); `to_protobuf` turns such a document into binary `TracesData`.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.json_format import ParseDict
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

SPAN_KIND_INTERNAL = 1
SPAN_KIND_CLIENT = 3
STATUS_OK = 1
STATUS_ERROR = 2


def any_value_json(value: Any) -> dict[str, Any]:
    """Return the OTLP/JSON AnyValue of a Python value."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": attributes_json(value)}}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [any_value_json(item) for item in value]}}
    return {"stringValue": str(value)}


def attributes_json(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return OTLP/JSON KeyValue entries for a mapping."""
    return [{"key": key, "value": any_value_json(value)} for key, value in attributes.items()]


def span_json(
    name: str,
    trace_id: str,
    span_id: str,
    start_ns: int,
    end_ns: int,
    attributes: Mapping[str, Any] | None = None,
    *,
    parent_span_id: str = "",
    kind: int = SPAN_KIND_INTERNAL,
    status_code: int = 0,
    status_message: str = "",
    events: Sequence[Mapping[str, Any]] = (),
    links: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Return one OTLP/JSON span; events are {name, time_ns, attributes}, links {trace_id, span_id, attributes}."""
    span: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(end_ns),
        "attributes": attributes_json(attributes or {}),
    }
    if parent_span_id:
        span["parentSpanId"] = parent_span_id
    if status_code or status_message:
        span["status"] = {"code": status_code, "message": status_message}
    if events:
        span["events"] = [
            {
                "name": event["name"],
                "timeUnixNano": str(event["time_ns"]),
                "attributes": attributes_json(event.get("attributes", {})),
            }
            for event in events
        ]
    if links:
        span["links"] = [
            {
                "traceId": link["trace_id"],
                "spanId": link["span_id"],
                "attributes": attributes_json(link.get("attributes", {})),
            }
            for link in links
        ]
    return span


def otlp_json_export(
    spans: Sequence[Mapping[str, Any]],
    resource: Mapping[str, Any] | None = None,
    scope_name: str = "sample.instrumentation",
    scope_version: str = "1.0.0",
) -> dict[str, Any]:
    """Wrap spans in one resource and one scope as an OTLP/JSON ExportTraceServiceRequest."""
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": attributes_json(resource or {"service.name": "sample-agent"})},
                "scopeSpans": [
                    {"scope": {"name": scope_name, "version": scope_version}, "spans": list(spans)}
                ],
            }
        ]
    }


def to_protobuf(document: Mapping[str, Any]) -> bytes:
    """Encode an OTLP/JSON document (hex ids) as binary TracesData."""
    converted = copy.deepcopy(dict(document))
    for resource_spans in converted.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                _hex_to_base64(span, ("traceId", "spanId", "parentSpanId"))
                for link in span.get("links", []):
                    _hex_to_base64(link, ("traceId", "spanId"))
    return ParseDict(converted, TracesData()).SerializeToString()


def _hex_to_base64(item: dict[str, Any], keys: Sequence[str]) -> None:
    for key in keys:
        if key in item:
            item[key] = base64.b64encode(bytes.fromhex(item[key])).decode("ascii")
