"""Loss and duplicate accounting: what was produced against what the database stores."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import psycopg


@dataclass(frozen=True)
class StoredCount:
    """Rows stored for one key (a run id): all rows, and rows with distinct span ids."""

    rows: int
    distinct_span_ids: int


@dataclass
class Verdict:
    """Result of comparing produced and stored spans, summed over keys, with the keys at fault."""

    produced: int = 0
    stored_rows: int = 0
    lost: int = 0
    duplicated: int = 0
    # Rows under keys that were never produced (another run, or a stale row under the prefix).
    unexpected: int = 0
    lost_by_key: dict[str, int] = field(default_factory=dict)
    duplicated_by_key: dict[str, int] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.unexpected == 0


def compare(produced: Mapping[str, int], stored: Mapping[str, StoredCount]) -> Verdict:
    """Compare spans produced per key with rows stored per key.

    Every produced span id is unique, so a key's lost spans are produced minus distinct span ids
    stored, and its duplicates are rows minus distinct span ids.
    """
    verdict = Verdict()
    for key, produced_count in produced.items():
        count = stored.get(key, StoredCount(0, 0))
        verdict.produced += produced_count
        verdict.stored_rows += count.rows
        lost = max(0, produced_count - count.distinct_span_ids)
        duplicated = count.rows - count.distinct_span_ids
        # More distinct ids than produced means rows from elsewhere share the key.
        unexpected = max(0, count.distinct_span_ids - produced_count)
        if lost:
            verdict.lost_by_key[key] = lost
        if duplicated:
            verdict.duplicated_by_key[key] = duplicated
        verdict.lost += lost
        verdict.duplicated += duplicated
        verdict.unexpected += unexpected
    for key, count in stored.items():
        if key not in produced:
            verdict.stored_rows += count.rows
            verdict.unexpected += count.rows
    return verdict


def stored_counts(
    connection: psycopg.Connection, run_prefix: str, since_ns: int
) -> dict[str, StoredCount]:
    """Count rows and distinct span ids per run id under a run-id prefix, from since_ns on.

    `since_ns` bounds start_time so the hypertable scans only the chunks of this load run.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT run_id, count(*), count(DISTINCT span_id) FROM spans"
            " WHERE run_id LIKE %s AND start_time >= to_timestamp(%s)"
            " GROUP BY run_id",
            (run_prefix.replace("%", r"\%").replace("_", r"\_") + "%", since_ns / 1e9),
        )
        return {run_id: StoredCount(rows, distinct) for run_id, rows, distinct in cursor}
