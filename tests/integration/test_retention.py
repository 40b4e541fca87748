"""Retention drops old chunks and deletes only frame objects no remaining row refers to."""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from pipeline.config import Settings
from pipeline.stores.objects import FrameObjectStore, ObjectStoreError, sha256_hex
from pipeline.stores.retention import apply_retention, parse_duration

# Rows this old sit in chunks of their own, far below anything other tests or the demo write.
ANCIENT = datetime(2001, 1, 1, tzinfo=timezone.utc)
TWENTY_YEARS = timedelta(days=365 * 20)


def _insert_frame(connection: psycopg.Connection, run_id: str, when: datetime, sha: str,
                  key: str) -> None:
    connection.execute(
        "INSERT INTO frames (capture_time, run_id, step, seq, kind, content_type, sha256,"
        " size_bytes, object_key) VALUES (%s, %s, 1, 0, 'viewport', 'image/png', %s, 1, %s)",
        (when, run_id, sha, key),
    )


def test_retention_keeps_shared_objects(live_settings: Settings) -> None:
    dsn = live_settings.database_dsn.reveal()
    store = FrameObjectStore(live_settings)
    run_id = f"retention-{uuid.uuid4().hex[:8]}"
    only_old, shared = os.urandom(64), os.urandom(64)
    old_key, _ = store.put_frame(only_old, sha256_hex(only_old), "image/png")
    shared_key, _ = store.put_frame(shared, sha256_hex(shared), "image/png")

    with psycopg.connect(dsn, autocommit=True) as connection:
        _insert_frame(connection, run_id, ANCIENT, sha256_hex(only_old), old_key)
        _insert_frame(connection, run_id, ANCIENT, sha256_hex(shared), shared_key)
        _insert_frame(connection, run_id, datetime.now(timezone.utc), sha256_hex(shared),
                      shared_key)
        connection.execute(
            "INSERT INTO spans (start_time, end_time, run_id, agent, trace_id, span_id, step,"
            " kind, name, status, pricing_status) VALUES (%s, %s, %s, 'a', 't', 's', 1,"
            " 'tool', 'x', 'ok', 'not_applicable')",
            (ANCIENT, ANCIENT, run_id),
        )

    result = apply_retention(dsn, TWENTY_YEARS, store)

    assert result.chunks_dropped["frames"] >= 1
    assert result.chunks_dropped["spans"] >= 1
    assert result.frame_objects_deleted == 1
    assert result.frame_objects_kept_shared == 1
    with pytest.raises(ObjectStoreError):
        store.get_frame(old_key)
    assert store.get_frame(shared_key) == shared
    with psycopg.connect(dsn) as connection:
        remaining = connection.execute(
            "SELECT count(*) FROM frames WHERE run_id = %s", (run_id,)
        ).fetchone()[0]
        old_spans = connection.execute(
            "SELECT count(*) FROM spans WHERE run_id = %s", (run_id,)
        ).fetchone()[0]
    assert remaining == 1
    assert old_spans == 0


@pytest.mark.parametrize(("text", "expected"), [
    ("7d", timedelta(days=7)), ("12h", timedelta(hours=12)), ("2w", timedelta(weeks=2)),
    ("90m", timedelta(minutes=90)), ("3600s", timedelta(hours=1)),
])
def test_parse_duration_units(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["7", "d7", "7 days", "-1d", "1.5h", ""])
def test_parse_duration_rejects_bad_text(text: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        parse_duration(text)
