"""The faust applications: one per worker role, each its own consumer group.

Span workers and frame workers are separate processes so they scale independently: spans are
CPU-bound on decoding and COPY, frames are I/O-bound on the object store.
"""

from __future__ import annotations

import asyncio
import logging

import faust
import psycopg
from aiohttp import web as aiohttp_web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pipeline import metrics
from pipeline.config import Settings
from pipeline.kafka_clients import faust_credentials

log = logging.getLogger(__name__)

ROLES = ("spans", "frames", "runs")
# 16 MiB covers the largest frame the SDK sends (8 MiB by default) with room for headers. The
# frames topic and the broker accept the same size.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def consumer_group(settings: Settings, role: str) -> str:
    return f"{settings.consumer_group_prefix}-{role}"


def create_app(role: str, settings: Settings, web_host: str, web_port: int) -> faust.App:
    """Build the faust app for a role; agents are attached by the role's module."""
    if role not in ROLES:
        raise ValueError(f"worker role {role!r} is unknown; use one of {', '.join(ROLES)}")
    datadir = settings.state_dir / "faust" / role
    # faust creates only the last folder of its data directory.
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        consumer_group(settings, role),
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=faust_credentials(settings),
        key_serializer="raw",
        value_serializer="raw",
        datadir=str(datadir),
        web_host=web_host,
        web_port=web_port,
        web_bind=web_host,
        # Topics are created by `spanline stack up` (or the Helm topics Job) with their partition
        # counts and retention; a worker must not create them with broker defaults.
        # The runs role declares its own internal topics: table changelogs and completed runs.
        topic_allow_declare=role == "runs",
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=MAX_MESSAGE_BYTES,
        consumer_max_fetch_size=MAX_MESSAGE_BYTES,
        # NOTE: faust's exactly_once mode has open bugs. The sinks get the same effect by storing
        # offsets with their rows, so the default at_least_once is correct here.
        processing_guarantee="at_least_once",
        # Standby replicas double changelog reading on every worker; recovery from the changelog
        # alone takes seconds at our table sizes.
        table_standby_replicas=0,
        # On shutdown faust would wait for in-flight events to be acknowledged, and a write
        # retrying through a database outage never acknowledges them, so SIGTERM hung. Not
        # waiting is safe: the sinks store offsets with their rows, and the next owner of the
        # partition skips what was already stored.
        stream_wait_empty=False,
    )
    app.spanline_settings = settings  # type: ignore[attr-defined]
    app.spanline_ready = False  # type: ignore[attr-defined]
    metrics.BUILD_INFO.info({"version": _version(), "role": role})
    _add_health_pages(app)
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("spanline")
    except PackageNotFoundError:
        return "unknown"


def _add_health_pages(app: faust.App) -> None:
    @app.page("/metrics")
    async def prometheus_metrics(web, request):  # noqa: ANN001 - faust view signature
        return aiohttp_web.Response(
            body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    @app.page("/healthz")
    async def liveness(web, request):  # noqa: ANN001
        # Any response proves that the event loop is running.
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readiness(web, request):  # noqa: ANN001
        assigned = sorted(f"{tp.topic}[{tp.partition}]" for tp in app.consumer.assignment())
        database_error = await asyncio.to_thread(_check_database, app.spanline_settings)
        ready = bool(app.spanline_ready) and bool(assigned) and database_error is None
        body = {"ready": ready, "assigned": assigned, "database_error": database_error}
        return web.json(body, status=200 if ready else 503)


def _check_database(settings: Settings) -> str | None:
    """Return None if the database runs a query within 2 s, else the error text."""
    try:
        with psycopg.connect(settings.database_dsn.reveal(), connect_timeout=2) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        return str(error).strip()
    return None
