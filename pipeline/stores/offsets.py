"""Kafka offsets kept in the database, in the same transaction as the rows they cover.

This is what makes a restarted worker neither lose nor duplicate: Kafka's committed offset may lag
behind what was stored, so every batch is filtered against the stored next offset, read under a
row lock. Two workers racing for the same partition during a rebalance serialise on that lock, and
the second one sees the first one's offsets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import psycopg


class _Positioned(Protocol):
    partition: int
    offset: int


def lock_next_offsets(
    cursor: psycopg.Cursor, consumer_group: str, topic: str, partitions: Iterable[int]
) -> dict[int, int]:
    """Lock and return the next offset to store per partition (0 for a partition never seen).

    Must run inside the transaction that will write the rows and call `save_next_offsets`.
    """
    partition_list = sorted(set(partitions))
    cursor.execute(
        "INSERT INTO sink_offsets (consumer_group, topic, partition, next_offset)"
        " SELECT %s, %s, p, 0 FROM unnest(%s::integer[]) AS p"
        " ON CONFLICT DO NOTHING",
        (consumer_group, topic, partition_list),
    )
    cursor.execute(
        "SELECT partition, next_offset FROM sink_offsets"
        " WHERE consumer_group = %s AND topic = %s AND partition = ANY(%s)"
        " ORDER BY partition FOR UPDATE",
        (consumer_group, topic, partition_list),
    )
    return {partition: next_offset for partition, next_offset in cursor.fetchall()}


def save_next_offsets(
    cursor: psycopg.Cursor, consumer_group: str, topic: str, next_offsets: Mapping[int, int]
) -> None:
    """Record the next offset per partition; call inside the rows' transaction."""
    for partition, next_offset in next_offsets.items():
        cursor.execute(
            "UPDATE sink_offsets SET next_offset = %s, updated_at = now()"
            " WHERE consumer_group = %s AND topic = %s AND partition = %s",
            (next_offset, consumer_group, topic, partition),
        )


def fresh_and_advanced(
    records: Sequence[_Positioned], stored_next: Mapping[int, int]
) -> tuple[list, dict[int, int]]:
    """Split off the records not stored yet and return them with the partitions' new next offsets.

    Only partitions whose next offset moved are in the returned mapping.
    """
    fresh = [record for record in records if record.offset >= stored_next[record.partition]]
    advanced = dict(stored_next)
    for record in fresh:
        advanced[record.partition] = max(advanced[record.partition], record.offset + 1)
    changed = {p: o for p, o in advanced.items() if o != stored_next[p]}
    return fresh, changed


def read_next_offsets(dsn: str, consumer_group: str, topic: str) -> dict[int, int]:
    """Return the stored next offset per partition, without locking (for seeking on assignment)."""
    with psycopg.connect(dsn) as connection:
        rows = connection.execute(
            "SELECT partition, next_offset FROM sink_offsets"
            " WHERE consumer_group = %s AND topic = %s",
            (consumer_group, topic),
        ).fetchall()
    return {partition: next_offset for partition, next_offset in rows}
