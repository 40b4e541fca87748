"""Retention: drop old hypertable chunks and the frame objects no remaining row refers to.

TimescaleDB's Apache edition has `drop_chunks` but not retention policies, so a scheduled job
(the Helm CronJob, or cron locally) calls `apply_retention`. Frame objects are content-addressed
and shared between runs, so an object is deleted only when no frame row, old or new, still
names it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg

from pipeline.stores.objects import FrameObjectStore, ObjectStoreError

log = logging.getLogger(__name__)

HYPERTABLES = ("spans", "frames", "run_metrics")
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MIN_RETENTION_S = 3600
MAX_RETENTION_S = 100 * 365 * 86400


def parse_duration(text: str) -> timedelta:
    """Parse `30d`, `12h`, `2w` ... into a timedelta; raise ValueError naming the text."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(
            f"duration {text!r} is invalid; use a whole number and one of s, m, h, d, w (e.g. 7d)"
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    # Dropping everything up to now is never a retention; a mistyped 0 must not empty the tables.
    if seconds < MIN_RETENTION_S:
        raise ValueError(f"duration {text!r} is below the minimum of 1h; keep at least an hour of data")
    if seconds > MAX_RETENTION_S:
        raise ValueError(f"duration {text!r} is above the maximum of 100 years")
    return timedelta(seconds=seconds)


@dataclass
class RetentionResult:
    chunks_dropped: dict[str, int] = field(default_factory=dict)
    frame_objects_deleted: int = 0
    frame_objects_kept_shared: int = 0


def apply_retention(
    dsn: str, older_than: timedelta, objects: FrameObjectStore | None, dry_run: bool = False
) -> RetentionResult:
    """Drop chunks older than `older_than` and delete frame objects only they referred to.

    Frame objects go first: the object keys of the frames about to be dropped are read, the
    chunks are dropped, and then each key that no remaining row names is deleted. A crash in
    between leaves orphan objects, never rows pointing at deleted objects.
    """
    result = RetentionResult()
    interval = f"{int(older_than.total_seconds())} seconds"
    with psycopg.connect(dsn, autocommit=True) as connection:
        doomed_keys = [
            row[0] for row in connection.execute(
                "SELECT DISTINCT object_key FROM frames WHERE capture_time < now() - %s::interval",
                (interval,),
            )
        ]
        for table in HYPERTABLES:
            if dry_run:
                chunks = connection.execute(
                    "SELECT count(*) FROM show_chunks(%s::regclass, older_than => %s::interval)",
                    (table, interval),
                ).fetchone()[0]
            else:
                chunks = len(connection.execute(
                    "SELECT drop_chunks(%s::regclass, older_than => %s::interval)",
                    (table, interval),
                ).fetchall())
            result.chunks_dropped[table] = chunks
            log.info("retention table=%s chunks=%d dry_run=%s", table, chunks, dry_run)

        if objects is None or not doomed_keys:
            return result
        still_used = {
            row[0] for row in connection.execute(
                "SELECT DISTINCT object_key FROM frames WHERE object_key = ANY(%s)", (doomed_keys,)
            )
        }
    for key in doomed_keys:
        if key in still_used:
            result.frame_objects_kept_shared += 1
            continue
        if not dry_run:
            try:
                objects.delete_frame(key)
            except ObjectStoreError as error:
                log.warning("retention could not delete object key=%s error=%s", key, error)
                continue
        result.frame_objects_deleted += 1
    return result
