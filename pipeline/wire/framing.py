"""Avro single-object framing: which schema wrote these bytes, and a registry of known schemas.

Every Kafka value is `0xC3 0x01`, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer
schema's Parsing Canonical Form, then the Avro binary body. The registry contains every schema in
`schemas/`: current versions at the top level, earlier versions under `schemas/history/`. A reader
decodes with the exact writer schema and resolves it to the current reader schema.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

logger = logging.getLogger(__name__)

MAGIC = b"\xc3\x01"
FINGERPRINT_SIZE = 8
HEADER_SIZE = len(MAGIC) + FINGERPRINT_SIZE

# NOTE: the schemas are read from the repository's schemas/ folder, so the package must run from a
# checkout or an editable install (pip install -e .). A plain wheel install does not contain them.
SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
HISTORY_SUBDIR = "history"

REASONS = frozenset(
    {"bad_magic", "unknown_schema", "truncated", "invalid_batch", "sha256_mismatch", "invalid_content_type"}
)

# Exceptions fastavro raises on values that do not fit the schema (wrong type, unknown enum symbol,
# integer out of range).
_ENCODE_ERRORS = (ValueError, TypeError, OverflowError, KeyError, AttributeError)


class WireError(Exception):
    """Bytes that cannot be decoded, or a record that cannot be encoded.

    `reason` is one of REASONS; workers send it as the dead-letter reason header.
    """

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown wire error reason {reason!r}; expected one of {sorted(REASONS)}")
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class WireSchema:
    """One parsed schema version and its single-object fingerprint."""

    name: str
    fingerprint: bytes
    parsed: Any
    raw: Mapping[str, Any]
    source: str
    is_current: bool

    @property
    def header(self) -> bytes:
        return MAGIC + self.fingerprint

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()


def schema_fingerprint(schema: Mapping[str, Any]) -> bytes:
    """Compute the 8-byte little-endian CRC-64-AVRO fingerprint of a schema's canonical form."""
    canonical = to_parsing_canonical_form(schema)
    # fastavro returns the hex of the fingerprint already in little-endian byte order.
    return bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


def _full_name(schema: Mapping[str, Any]) -> str:
    name = schema["name"]
    namespace = schema.get("namespace")
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


class SchemaRegistry:
    """Known schemas by fingerprint, and the current version of each record name."""

    def __init__(self) -> None:
        self._by_fingerprint: dict[bytes, WireSchema] = {}
        self._current: dict[str, WireSchema] = {}

    @classmethod
    def from_directory(cls, directory: Path) -> "SchemaRegistry":
        """Load `*.avsc` at the top of `directory` as current and `history/**/*.avsc` as older."""
        registry = cls()
        for path in sorted(directory.glob("*.avsc")):
            registry.add(json.loads(path.read_text(encoding="utf-8")), source=str(path), current=True)
        history = directory / HISTORY_SUBDIR
        if history.is_dir():
            for path in sorted(history.rglob("*.avsc")):
                registry.add(
                    json.loads(path.read_text(encoding="utf-8")), source=str(path), current=False
                )
        return registry

    def add(self, schema: Mapping[str, Any], *, source: str = "<memory>", current: bool) -> WireSchema:
        """Parse and register one schema version; raise ValueError on a second current version."""
        name = _full_name(schema)
        digest = schema_fingerprint(schema)
        known = self._by_fingerprint.get(digest)
        if known is not None and not current:
            # An old version identical to the current one adds nothing.
            return known
        if current and name in self._current:
            raise ValueError(
                f"two current schemas for {name}: {self._current[name].source} and {source}; "
                f"move the older one to schemas/{HISTORY_SUBDIR}/"
            )
        # Each version is parsed with its own named-type table, so two versions of one record can
        # both define spanline.SpanKind without colliding.
        parsed = fastavro.parse_schema(dict(schema), named_schemas={})
        entry = WireSchema(
            name=name,
            fingerprint=digest,
            parsed=parsed,
            raw=schema,
            source=source,
            is_current=current,
        )
        self._by_fingerprint[digest] = entry
        if current:
            self._current[name] = entry
        return entry

    def current(self, name: str) -> WireSchema:
        """Return the current (writer and reader) version of record `name`."""
        try:
            return self._current[name]
        except KeyError:
            raise KeyError(
                f"no current schema named {name}; known: {sorted(self._current)}"
            ) from None

    def by_fingerprint(self, digest: bytes) -> WireSchema | None:
        return self._by_fingerprint.get(digest)

    def schemas(self) -> Iterable[WireSchema]:
        return self._by_fingerprint.values()

    def write(self, name: str, record: Mapping[str, Any]) -> bytes:
        """Encode `record` with the current version of `name`, framed as a single object."""
        schema = self.current(name)
        buffer = io.BytesIO()
        buffer.write(schema.header)
        try:
            fastavro.schemaless_writer(buffer, schema.parsed, record)
        except _ENCODE_ERRORS as error:
            raise WireError(
                "invalid_batch", f"record does not fit schema {name}: {type(error).__name__}: {error}"
            ) from error
        return buffer.getvalue()

    def writer_of(self, value: bytes) -> WireSchema:
        """Return the schema that wrote `value`, checking the magic bytes and the fingerprint."""
        if value is None:
            raise WireError("truncated", "value is missing (a Kafka tombstone carries no bytes)")
        if len(value) < HEADER_SIZE:
            if value[: len(MAGIC)] != MAGIC[: len(value)]:
                raise WireError("bad_magic", f"value starts with {bytes(value[:2]).hex()}, expected c301")
            raise WireError(
                "truncated", f"value has {len(value)} bytes, shorter than the {HEADER_SIZE}-byte header"
            )
        if value[: len(MAGIC)] != MAGIC:
            raise WireError(
                "bad_magic",
                f"value starts with {bytes(value[:2]).hex()}, expected c301 (Avro single-object encoding)",
            )
        digest = bytes(value[len(MAGIC) : HEADER_SIZE])
        schema = self._by_fingerprint.get(digest)
        if schema is None:
            raise WireError(
                "unknown_schema",
                f"writer schema fingerprint {digest.hex()} is not among the schemas in {SCHEMAS_DIR}; "
                "deploy readers with the newer schemas before writers",
            )
        return schema

    def read(
        self, value: bytes, name: str, *, accept_newer_writer: bool = False
    ) -> tuple[dict[str, Any], WireSchema]:
        """Decode `value` into a record of the current version of `name`.

        Decodes with the writer schema the fingerprint names and resolves it to the current reader
        schema. Returns the record and the writer schema.

        With `accept_newer_writer`, a value whose fingerprint is unknown is read as if the current
        schema of `name` wrote it, ignoring trailing bytes. That is correct only for writers that
        follow the evolution rule of the output topics (new fields are appended at the end of the
        record, each with a default), and lets a consumer that has not been upgraded keep reading
        the fields it knows. Garbage with an unknown fingerprint may then decode as nonsense or
        raise invalid_batch, so the span workers never use it.
        """
        try:
            writer = self.writer_of(value)
        except WireError as error:
            if not (accept_newer_writer and error.reason == "unknown_schema"):
                raise
            return self._read_known_prefix(value, name), self.current(name)
        if writer.name != name:
            raise WireError(
                "invalid_batch", f"schema mismatch: expected {name}, found {writer.name} ({writer.fingerprint_hex})"
            )
        reader = self.current(name)
        # Identical writer and reader skip fastavro's schema resolution, which costs time per call.
        reader_parsed = None if writer is reader else reader.parsed
        if not isinstance(value, bytes):
            value = bytes(value)
        buffer = io.BytesIO(value)
        buffer.seek(HEADER_SIZE)
        try:
            record = fastavro.schemaless_reader(buffer, writer.parsed, reader_parsed)
        except Exception as error:  # fastavro raises many types on corrupt input
            if buffer.tell() >= len(value):
                raise WireError(
                    "truncated",
                    f"body ended after {len(value)} bytes while decoding {name}: "
                    f"{type(error).__name__}: {error}",
                ) from error
            raise WireError(
                "invalid_batch",
                f"body does not decode as {name} ({writer.fingerprint_hex}): {type(error).__name__}: {error}",
            ) from error
        trailing = len(value) - buffer.tell()
        if trailing:
            raise WireError(
                "invalid_batch", f"{trailing} bytes left after the {name} body; the value is corrupt"
            )
        return record, writer


    def _read_known_prefix(self, value: bytes, name: str) -> dict[str, Any]:
        reader = self.current(name)
        buffer = io.BytesIO(bytes(value))
        buffer.seek(HEADER_SIZE)
        try:
            return fastavro.schemaless_reader(buffer, reader.parsed, None)
        except Exception as error:  # fastavro raises many types on corrupt input
            raise WireError(
                "invalid_batch",
                f"value of an unknown newer {name} schema does not start with the fields of "
                f"{reader.fingerprint_hex}: {type(error).__name__}: {error}",
            ) from error


def _load_default_registry() -> SchemaRegistry:
    if not SCHEMAS_DIR.is_dir():
        raise FileNotFoundError(
            f"schema folder {SCHEMAS_DIR} not found; install spanline from a checkout with pip install -e ."
        )
    return SchemaRegistry.from_directory(SCHEMAS_DIR)


# Loaded once at import: parsing costs tens of microseconds per schema, too much per message.
_DEFAULT_REGISTRY = _load_default_registry()


def default_registry() -> SchemaRegistry:
    """Return the registry of the repository's `schemas/` folder, loaded at import."""
    return _DEFAULT_REGISTRY
