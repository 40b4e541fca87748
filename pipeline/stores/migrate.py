"""Versioned database migrations: numbered SQL files applied once each, in order."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import psycopg

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_NAME_PATTERN = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Any fixed 64-bit number works; it only has to be the same for every process running migrations,
# so two workers (or a Helm hook and a developer) never apply the same file twice.
_ADVISORY_LOCK_ID = 0x5350414E4C494E45


def list_migrations(directory: Path = MIGRATIONS_DIR) -> list[tuple[str, Path]]:
    """Return (version, path) for every migration file, ordered by version."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME_PATTERN.match(path.name)
        if match is None:
            raise ValueError(
                f"migration file name {path.name!r} is invalid; use NNNN_lowercase_words.sql"
            )
        found.append((match.group(1), path))
    versions = [version for version, _ in found]
    if len(versions) != len(set(versions)):
        raise ValueError(f"two migration files in {directory} share a version number: {versions}")
    return found


def apply_migrations(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every migration not yet recorded in schema_migrations; return the versions applied.

    Each file runs in its own transaction together with its schema_migrations row, so a failed
    file leaves no half-applied schema behind and is retried on the next call.
    """
    applied_now: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_ID,))
        try:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in connection.execute("SELECT version FROM schema_migrations")}
            for version, path in list_migrations(directory):
                if version in done:
                    continue
                log.info("applying migration version=%s file=%s", version, path.name)
                with connection.transaction():
                    connection.execute(path.read_text())
                    connection.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (version, path.name),
                    )
                applied_now.append(version)
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_ID,))
    return applied_now
