"""Codecs of the outputs for downstream services: enriched span batches and run snapshots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.wire.framing import SchemaRegistry, default_registry

ENRICHED_SCHEMA_NAME = "spanline.EnrichedSpanBatch"
RUN_SNAPSHOT_SCHEMA_NAME = "spanline.RunSnapshot"


def enriched_fields(registry: SchemaRegistry | None = None) -> list[str]:
    """Return the per-span column names of the current enriched schema."""
    schema = (registry or default_registry()).current(ENRICHED_SCHEMA_NAME)
    return [
        field["name"] for field in schema.raw["fields"]
        if isinstance(field["type"], Mapping) and field["type"].get("type") == "array"
    ]


def encode_enriched_batch(
    header: Mapping[str, Any],
    columns: Mapping[str, Sequence[Any]],
    cost_columns: Mapping[str, Sequence[Any]],
    *,
    registry: SchemaRegistry | None = None,
) -> bytes:
    """Encode one run's priced spans; `header` has run_id, agent, sdk and the run_* context."""
    registry = registry or default_registry()
    record: dict[str, Any] = dict(header)
    for name in enriched_fields(registry):
        record[name] = columns[name] if name in columns else cost_columns[name]
    return registry.write(ENRICHED_SCHEMA_NAME, record)


def decode_enriched_batch(
    value: bytes, *, registry: SchemaRegistry | None = None, accept_newer_writer: bool = True
) -> dict[str, Any]:
    """Decode an enriched batch into a record of the current schema (columns as lists).

    A batch written by a newer schema version that this reader does not know yet is read up to
    the fields this version has (see SchemaRegistry.read), so downstream consumers keep working
    while producers upgrade first.
    """
    record, _ = (registry or default_registry()).read(
        value, ENRICHED_SCHEMA_NAME, accept_newer_writer=accept_newer_writer
    )
    return record


def encode_run_snapshot(
    snapshot: Mapping[str, Any], *, registry: SchemaRegistry | None = None
) -> bytes:
    return (registry or default_registry()).write(RUN_SNAPSHOT_SCHEMA_NAME, snapshot)


def decode_run_snapshot(
    value: bytes, *, registry: SchemaRegistry | None = None, accept_newer_writer: bool = True
) -> dict[str, Any]:
    """Decode a run snapshot; newer writers are read as decode_enriched_batch describes."""
    record, _ = (registry or default_registry()).read(
        value, RUN_SNAPSHOT_SCHEMA_NAME, accept_newer_writer=accept_newer_writer
    )
    return record
