"""Decode OTLP trace exports (protobuf or OTLP/JSON) into `TracesData`, marking bad strings.

Both encodings end as one `opentelemetry.proto.trace.v1.TracesData` message, which is wire
compatible with `ExportTraceServiceRequest`. Alongside it comes the set of span positions
`(resource index, scope index, span index)` whose strings held invalid UTF-8 that was replaced
with U+FFFD, and the positions of spans that could not be decoded at all, so the mapping can flag
or reject exactly those spans and keep the rest of the export. Pure: no I/O.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import ParseDict, ParseError
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, TracesData

logger = logging.getLogger(__name__)

ENCODINGS = ("otlp_proto", "otlp_json")
# A span's place in the export: indexes of its ResourceSpans, ScopeSpans and Span.
SpanPosition = tuple[int, int, int]


class OtlpDecodeError(ValueError):
    """The bytes are not an OTLP trace export in the given encoding; nothing can be kept."""


@dataclass
class DecodedTraces:
    """One decoded export with the positions of spans that need a flag or a rejection."""

    traces: TracesData
    invalid_utf8: set[SpanPosition] = field(default_factory=set)
    # Spans (OTLP/JSON only) whose fields did not fit the schema, with the parser's message.
    undecodable: dict[SpanPosition, str] = field(default_factory=dict)


def decode_otlp(data: bytes, encoding: str) -> DecodedTraces:
    """Decode one export in `encoding` (`otlp_proto` or `otlp_json`).

    Raises OtlpDecodeError when the bytes are not an export at all; invalid UTF-8 in strings is
    replaced and reported instead of raising.
    """
    if encoding == "otlp_proto":
        return decode_protobuf(data)
    if encoding == "otlp_json":
        return decode_json(data)
    raise ValueError(f"unknown OTLP encoding {encoding!r}; use one of {', '.join(ENCODINGS)}")


# --- protobuf --------------------------------------------------------------------------------

def decode_protobuf(data: bytes) -> DecodedTraces:
    """Parse binary `TracesData`; on a UTF-8 failure parse again with strings read as bytes."""
    try:
        return DecodedTraces(TracesData.FromString(data))
    except DecodeError as strict_error:
        # The protobuf runtime rejects a whole message for one proto3 string that is not
        # UTF-8. A copy of the schema with every string field declared as bytes (the same wire
        # type) still parses it, so only the affected spans need a flag.
        try:
            lenient = _lenient_traces_class().FromString(data)
        except DecodeError:
            raise OtlpDecodeError(f"invalid OTLP protobuf ({len(data)} bytes): {strict_error}") from None
    return _repair_lenient(lenient)


_LENIENT_PREFIX = "spanline_lenient"
_lenient_class: type[Message] | None = None


def _lenient_traces_class() -> type[Message]:
    global _lenient_class
    if _lenient_class is None:
        pool = descriptor_pool.DescriptorPool()
        for module in (common_pb2, resource_pb2, trace_pb2):
            file_proto = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
            file_proto.name = f"{_LENIENT_PREFIX}/{file_proto.name}"
            file_proto.package = f"{_LENIENT_PREFIX}.{file_proto.package}"
            file_proto.dependency[:] = [f"{_LENIENT_PREFIX}/{name}" for name in file_proto.dependency]
            file_proto.ClearField("options")
            for message_proto in file_proto.message_type:
                _strings_to_bytes(message_proto)
            pool.Add(file_proto)
        descriptor = pool.FindMessageTypeByName(f"{_LENIENT_PREFIX}.opentelemetry.proto.trace.v1.TracesData")
        _lenient_class = message_factory.GetMessageClass(descriptor)
    return _lenient_class


def _strings_to_bytes(message_proto: descriptor_pb2.DescriptorProto) -> None:
    for field_proto in message_proto.field:
        if field_proto.type == descriptor_pb2.FieldDescriptorProto.TYPE_STRING:
            field_proto.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
        if field_proto.type_name.startswith(".opentelemetry."):
            field_proto.type_name = f".{_LENIENT_PREFIX}{field_proto.type_name}"
    for nested in message_proto.nested_type:
        _strings_to_bytes(nested)


def _repair_lenient(lenient: Message) -> DecodedTraces:
    traces = TracesData()
    invalid: set[SpanPosition] = set()
    for r_index, lenient_resource in enumerate(lenient.resource_spans):
        resource_spans = traces.resource_spans.add()
        resource_bad = _copy_repairing(lenient_resource.resource, resource_spans.resource)
        resource_bad |= _set_text(resource_spans, "schema_url", lenient_resource.schema_url)
        for s_index, lenient_scope in enumerate(lenient_resource.scope_spans):
            scope_spans = resource_spans.scope_spans.add()
            scope_bad = _copy_repairing(lenient_scope.scope, scope_spans.scope)
            scope_bad |= _set_text(scope_spans, "schema_url", lenient_scope.schema_url)
            for p_index, lenient_span in enumerate(lenient_scope.spans):
                span_bad = _copy_repairing(lenient_span, scope_spans.spans.add())
                if resource_bad or scope_bad or span_bad:
                    invalid.add((r_index, s_index, p_index))
    return DecodedTraces(traces, invalid_utf8=invalid)


def _set_text(target: Message, name: str, raw: bytes) -> bool:
    text, replaced = _utf8(raw)
    setattr(target, name, text)
    return replaced


def _utf8(raw: bytes) -> tuple[str, bool]:
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), True


def _copy_repairing(source: Message, target: Message) -> bool:
    """Copy a lenient message into its strict twin; return True if any string was repaired."""
    replaced = False
    target.SetInParent()
    for source_field, value in source.ListFields():
        target_field = target.DESCRIPTOR.fields_by_name[source_field.name]
        repeated = source_field.is_repeated
        if source_field.message_type is not None:
            if repeated:
                container = getattr(target, source_field.name)
                for item in value:
                    replaced |= _copy_repairing(item, container.add())
            else:
                replaced |= _copy_repairing(value, getattr(target, source_field.name))
        elif target_field.type == FieldDescriptor.TYPE_STRING:
            if repeated:
                texts = [_utf8(item) for item in value]
                getattr(target, source_field.name).extend(text for text, _ in texts)
                replaced |= any(bad for _, bad in texts)
            else:
                replaced |= _set_text(target, source_field.name, value)
        elif repeated:
            getattr(target, source_field.name).extend(value)
        else:
            setattr(target, source_field.name, value)
    return replaced


# --- OTLP/JSON --------------------------------------------------------------------------------

# Lone UTF-16 surrogates: what invalid UTF-8 bytes become under surrogateescape, and what a JSON
# "\udc80" escape decodes to. Neither is a Unicode character, so both are replaced.
_SURROGATES = re.compile("[\ud800-\udfff]")
_REPLACEMENT = "\ufffd"


def decode_json(data: bytes | str) -> DecodedTraces:
    """Parse OTLP/JSON: hex trace and span ids, lowerCamelCase or snake_case keys.

    A span whose fields do not fit the schema is reported in `undecodable`; the others are kept.
    Raises OtlpDecodeError for text that is not JSON or has no resource spans list.
    """
    text = data if isinstance(data, str) else data.decode("utf-8", errors="surrogateescape")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise OtlpDecodeError(f"invalid OTLP/JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    return decode_json_document(document)


def decode_json_document(document: Any) -> DecodedTraces:
    """Convert an already parsed OTLP/JSON document (see `decode_json`)."""
    if not isinstance(document, Mapping):
        raise OtlpDecodeError(f"invalid OTLP/JSON: expected an object, got {type(document).__name__}")
    resource_list = _get(document, "resourceSpans", "resource_spans")
    if resource_list is None:
        resource_list = []
    if not isinstance(resource_list, list):
        raise OtlpDecodeError("invalid OTLP/JSON: 'resourceSpans' is not a list")

    decoded = DecodedTraces(TracesData())
    for r_index, resource_json in enumerate(resource_list):
        resource_spans = decoded.traces.resource_spans.add()
        resource_json = resource_json if isinstance(resource_json, Mapping) else {}
        resource_bad, resource_error = _parse_part(resource_json, ("resource",), resource_spans, ResourceSpans)
        scope_list = _get(resource_json, "scopeSpans", "scope_spans") or []
        if not isinstance(scope_list, list):
            scope_list = []
            resource_error = resource_error or "'scopeSpans' is not a list"
        for s_index, scope_json in enumerate(scope_list):
            scope_spans = resource_spans.scope_spans.add()
            scope_json = scope_json if isinstance(scope_json, Mapping) else {}
            scope_bad, scope_error = _parse_part(scope_json, ("scope",), scope_spans, ScopeSpans)
            span_list = _get(scope_json, "spans") or []
            if not isinstance(span_list, list):
                span_list = []
                scope_error = scope_error or "'spans' is not a list"
            for p_index, span_json in enumerate(span_list):
                position = (r_index, s_index, p_index)
                span = scope_spans.spans.add()
                span_bad, span_error = _parse_span(span_json, span)
                error = resource_error or scope_error or span_error
                if error:
                    decoded.undecodable[position] = error
                if resource_bad or scope_bad or span_bad:
                    decoded.invalid_utf8.add(position)
    return decoded


def _get(mapping: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in mapping:
            return mapping[name]
    return None


def _parse_part(
    container_json: Mapping[str, Any], names: tuple[str, ...], target: Message, container_type: type[Message]
) -> tuple[bool, str | None]:
    """Parse the resource or scope and the schema URL of one container, without its children."""
    subset: dict[str, Any] = {}
    for key in (*names, "schemaUrl", "schema_url"):
        if key in container_json:
            subset[key] = container_json[key]
    cleaned, replaced = _clean_strings(subset)
    try:
        ParseDict(cleaned, target, ignore_unknown_fields=True)
    except (ParseError, ValueError, TypeError) as error:
        return replaced, f"invalid {container_type.DESCRIPTOR.name}: {error}"
    return replaced, None


_SPAN_ID_KEYS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")
_LINK_ID_KEYS = ("traceId", "trace_id", "spanId", "span_id")


def _parse_span(span_json: Any, target: Span) -> tuple[bool, str | None]:
    if not isinstance(span_json, Mapping):
        return False, f"span is a {type(span_json).__name__}, not an object"
    cleaned, replaced = _clean_strings(span_json)
    id_errors: list[str] = []
    _hex_ids_to_base64(cleaned, _SPAN_ID_KEYS, id_errors, "span")
    links = _get(cleaned, "links")
    if isinstance(links, list):
        for link in links:
            if isinstance(link, dict):
                _hex_ids_to_base64(link, _LINK_ID_KEYS, id_errors, "link")
    try:
        ParseDict(cleaned, target, ignore_unknown_fields=True)
    except (ParseError, ValueError, TypeError) as error:
        target.Clear()
        return replaced, f"invalid span: {error}"
    if id_errors:
        return replaced, "; ".join(id_errors)
    return replaced, None


def _hex_ids_to_base64(item: dict[str, Any], keys: tuple[str, ...], errors: list[str], where: str) -> None:
    # OTLP/JSON writes ids as hex, while the protobuf JSON mapping expects base64 for bytes.
    for key in keys:
        value = item.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            errors.append(f"{where} {key} {value!r} is not a hex string")
            item[key] = ""
            continue
        try:
            item[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
        except ValueError:
            errors.append(f"{where} {key} {value[:40]!r} is not hex")
            item[key] = ""


def _clean_strings(value: Any) -> tuple[Any, bool]:
    """Return a copy of a JSON value with lone surrogates replaced, and whether any were."""
    if isinstance(value, str):
        if _SURROGATES.search(value):
            return _SURROGATES.sub(_REPLACEMENT, value), True
        return value, False
    if isinstance(value, Mapping):
        replaced = False
        result: dict[str, Any] = {}
        for key, item in value.items():
            clean_key, key_bad = _clean_strings(key)
            clean_item, item_bad = _clean_strings(item)
            result[clean_key] = clean_item
            replaced = replaced or key_bad or item_bad
        return result, replaced
    if isinstance(value, list):
        items = [_clean_strings(item) for item in value]
        return [item for item, _ in items], any(bad for _, bad in items)
    return value, False
