"""Binary COPY dumpers that take the wire's raw values, so the hot path builds no datetime or dict.

Registered on one connection only. With `copy.set_types(...)`, psycopg picks dumpers by the
column's type oid, so these replace the defaults for COPY on that connection and nowhere else:
- timestamptz takes integer nanoseconds since the Unix epoch (the wire's `start_ns`);
- jsonb takes JSON text that is already serialised (the wire's `attributes`).
"""

from __future__ import annotations

import struct

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format

# PostgreSQL's binary timestamptz is int64 microseconds since 2000-01-01T00:00:00Z.
_POSTGRES_EPOCH_MICROS = 946_684_800_000_000
_pack_int64 = struct.Struct(">q").pack
_JSONB_VERSION = b"\x01"


class NanosTimestamp:
    """Marker type the dumpers are registered for; values are plain ints at run time."""


class JsonText:
    """Marker type for JSON text handed to a jsonb column unchanged."""


class _NanosTimestamptzBinaryDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: int) -> bytes:
        return _pack_int64(obj // 1000 - _POSTGRES_EPOCH_MICROS)


class _JsonTextBinaryDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: str) -> bytes:
        return _JSONB_VERSION + obj.encode()


def register_copy_dumpers(connection: psycopg.Connection) -> None:
    """Make COPY on this connection accept int nanoseconds for timestamptz and text for jsonb."""
    types = connection.adapters.types
    timestamptz_oid = types["timestamptz"].oid
    jsonb_oid = types["jsonb"].oid

    timestamp_dumper = type(
        "NanosTimestamptzBinaryDumper", (_NanosTimestamptzBinaryDumper,), {"oid": timestamptz_oid}
    )
    json_dumper = type("JsonTextBinaryDumper", (_JsonTextBinaryDumper,), {"oid": jsonb_oid})
    connection.adapters.register_dumper(NanosTimestamp, timestamp_dumper)
    connection.adapters.register_dumper(JsonText, json_dumper)
