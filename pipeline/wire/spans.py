"""Span-batch codec: many spans of one run as Avro columns (`schemas/span_batch.avsc`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from pipeline.wire.framing import SchemaRegistry, WireError, WireSchema, default_registry

logger = logging.getLogger(__name__)

SPAN_BATCH_SCHEMA_NAME = "spanline.SpanBatch"
BATCH_FIELDS = ("run_id", "agent", "sdk")


def _sdk_version() -> str:
    try:
        return metadata.version("spanline")
    except metadata.PackageNotFoundError:
        return "0+unknown"


DEFAULT_SDK = f"spanline-python/{_sdk_version()}"

_NO_DEFAULT = object()


def _is_array(field: Mapping[str, Any]) -> bool:
    field_type = field["type"]
    return isinstance(field_type, Mapping) and field_type.get("type") == "array"


def _item_default(field: Mapping[str, Any]) -> object:
    """Return the value a missing per-span column is filled with, or _NO_DEFAULT if required.

    A field may name it with the schema property `item_default`; nullable items default to None.
    """
    if "item_default" in field:
        return field["item_default"]
    items = field["type"]["items"]
    if isinstance(items, list) and "null" in items:
        return None
    return _NO_DEFAULT


def _span_fields(schema: WireSchema) -> dict[str, object]:
    return {
        field["name"]: _item_default(field) for field in schema.raw["fields"] if _is_array(field)
    }


_CURRENT = default_registry().current(SPAN_BATCH_SCHEMA_NAME)
# Per-span field name -> fill value, in schema order, for the current schema.
_CURRENT_SPAN_FIELDS = _span_fields(_CURRENT)
SPAN_FIELDS: tuple[str, ...] = tuple(_CURRENT_SPAN_FIELDS)
REQUIRED_SPAN_FIELDS: tuple[str, ...] = tuple(
    name for name, fill in _CURRENT_SPAN_FIELDS.items() if fill is _NO_DEFAULT
)


@dataclass
class SpanBatch:
    """Decoded span batch: one list per per-span field, all `size` long."""

    run_id: str
    agent: str
    sdk: str
    columns: dict[str, list[Any]]
    size: int


def encode_span_batch(
    run_id: str,
    agent: str,
    columns: Mapping[str, Sequence[Any]],
    sdk: str = DEFAULT_SDK,
    *,
    registry: SchemaRegistry | None = None,
) -> bytes:
    """Encode the spans of one run, given as equal-length columns, into a framed Kafka value.

    Missing columns that have a default (nullable fields, `parent_span_id`, `status`,
    `attributes`) are filled. A missing required column, an unknown column name or columns of
    unequal length raise WireError with reason invalid_batch.
    """
    registry = registry or default_registry()
    schema = registry.current(SPAN_BATCH_SCHEMA_NAME)
    span_fields = _CURRENT_SPAN_FIELDS if schema is _CURRENT else _span_fields(schema)

    unknown = [name for name in columns if name not in span_fields]
    if unknown:
        raise WireError(
            "invalid_batch", f"unknown span columns {sorted(unknown)}; expected names from {list(span_fields)}"
        )
    lengths = {name: len(values) for name, values in columns.items()}
    size = next(iter(lengths.values()), 0)
    if any(length != size for length in lengths.values()):
        raise WireError("invalid_batch", f"span columns of unequal length in run {run_id}: {lengths}")

    record: dict[str, Any] = {"run_id": run_id, "agent": agent, "sdk": sdk}
    for name, fill in span_fields.items():
        values = columns.get(name)
        if values is None:
            if fill is _NO_DEFAULT:
                raise WireError("invalid_batch", f"required span column {name!r} is missing in run {run_id}")
            values = [fill] * size
        record[name] = values
    return registry.write(SPAN_BATCH_SCHEMA_NAME, record)


# (writer fingerprint, reader fingerprint) -> per-span fields the writer lacks, with fill values.
_missing_by_schema_pair: dict[tuple[bytes, bytes], dict[str, object]] = {}


def _fields_missing_in_writer(writer: WireSchema, reader: WireSchema) -> dict[str, object]:
    key = (writer.fingerprint, reader.fingerprint)
    missing = _missing_by_schema_pair.get(key)
    if missing is None:
        written = {field["name"] for field in writer.raw["fields"]}
        missing = {
            name: fill for name, fill in _span_fields(reader).items() if name not in written
        }
        _missing_by_schema_pair[key] = missing
    return missing


def decode_span_batch(value: bytes, *, registry: SchemaRegistry | None = None) -> SpanBatch:
    """Decode a framed span batch into columns of the current schema.

    Per-span fields that the writer's (older) schema lacks come back filled with their default,
    one per span. Raises WireError (bad_magic, unknown_schema, truncated, invalid_batch).
    """
    registry = registry or default_registry()
    record, writer = registry.read(value, SPAN_BATCH_SCHEMA_NAME)
    reader = registry.current(SPAN_BATCH_SCHEMA_NAME)
    span_fields = _CURRENT_SPAN_FIELDS if reader is _CURRENT else _span_fields(reader)

    columns = {name: record[name] for name in span_fields}
    size = len(columns["span_id"])
    if writer is not reader:
        for name, fill in _fields_missing_in_writer(writer, reader).items():
            if fill is _NO_DEFAULT:
                raise WireError(
                    "invalid_batch",
                    f"writer schema {writer.fingerprint_hex} lacks required span field {name!r} "
                    "and the reader schema gives it no item_default",
                )
            columns[name] = [fill] * size

    for name, values in columns.items():
        if len(values) != size:
            lengths = {column: len(column_values) for column, column_values in columns.items()}
            raise WireError(
                "invalid_batch",
                f"span columns of unequal length in run {record['run_id']}: "
                f"{name} has {len(values)}, span_id has {size}; all lengths: {lengths}",
            )
    return SpanBatch(
        run_id=record["run_id"],
        agent=record["agent"],
        sdk=record["sdk"],
        columns=columns,
        size=size,
    )
