"""Start, stop and inspect the local stack: Kafka, TimescaleDB and an S3 server on 127.0.0.1.

`up` is idempotent: it installs what is missing, starts what is not running, waits until each
service responds, then creates topics, applies migrations and creates the bucket. When all
services already run it only does the checks and the idempotent steps.
"""

from __future__ import annotations

import fcntl
import logging
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from pipeline import config
from pipeline.config import Settings
from pipeline.stack import apt, kafka, postgres, s3
from pipeline.stack.paths import StackPaths
from pipeline.stack.procs import running_record, start_detached, stop_process, wait_for_argv
from pipeline.stack.topics import ensure_topics

logger = logging.getLogger(__name__)

SERVICE_PORTS = {"kafka": config.KAFKA_PORT, "postgres": config.POSTGRES_PORT, "s3": config.S3_PORT}
# Seconds each service gets to pass its health check after it was started or found running.
HEALTH_DEADLINES_S = {"kafka": 90.0, "postgres": 90.0, "s3": 60.0}
# PostgreSQL waits for every client to disconnect on SIGTERM, but SIGINT is its fast shutdown.
STOP_SIGNALS = {"kafka": signal.SIGTERM, "postgres": signal.SIGINT, "s3": signal.SIGTERM}


class StackError(RuntimeError):
    """Error raised when a service of the local stack did not start or failed its health check."""

    def __init__(self, service: str, expected: str, log_file: object, cause: object = None) -> None:
        message = f"{service}: expected {expected}, but it failed"
        if cause is not None:
            message += f" ({cause})"
        message += f"; read the log {log_file}"
        super().__init__(message)
        self.service = service


@dataclass(frozen=True)
class ServiceStatus:
    """State of one service as `status` prints it."""

    name: str
    running: bool
    pid: int | None
    port: int
    log_file: str

    def line(self) -> str:
        state = "running" if self.running else "stopped"
        pid = str(self.pid) if self.pid is not None else "-"
        return f"{self.name:<9} {state:<8} pid={pid:<8} port=127.0.0.1:{self.port:<6} log={self.log_file}"


def _progress(message: str) -> None:
    print(message, flush=True)


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _check_port_free(service: str, port: int, paths: StackPaths) -> None:
    if _port_open(port):
        raise RuntimeError(
            f"{service}: port 127.0.0.1:{port} is already in use by a process not started from the state "
            f"folder {paths.state_dir}; stop that process or free the port, then run spanline stack up again"
        )


def _wait_healthy(service: str, paths: StackPaths, expected: str, check: Callable[[float], str]) -> str:
    """Call `check(remaining_s)` until it returns or the service's deadline passes."""
    deadline = time.monotonic() + HEALTH_DEADLINES_S[service]
    pid_file = paths.pid_file(service)
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if running_record(pid_file) is None:
            raise StackError(service, expected, paths.log_file(service), "the process exited")
        try:
            return check(max(1.0, min(10.0, deadline - time.monotonic())))
        except Exception as error:  # each client library raises its own connection errors
            last_error = error
            time.sleep(1.0)
    raise StackError(service, expected, paths.log_file(service), f"timed out; last error: {last_error}")


def _install_all(settings: Settings, paths: StackPaths, needed: set[str]) -> s3.S3Server:
    """Download or build what the services in `needed` lack, in parallel; return the S3 server."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {}
        if "kafka" in needed:
            futures["kafka"] = pool.submit(kafka.install, settings)
        if "postgres" in needed:
            futures["postgres"] = pool.submit(postgres.extract_rootfs, settings, paths)
        futures["s3"] = pool.submit(s3.install, settings, paths)
        for name, future in futures.items():
            try:
                future.result()
            except Exception as error:
                raise StackError(name, "its software to install", paths.log_file(name), error) from error
    return futures["s3"].result()


def _start_kafka(settings: Settings, paths: StackPaths) -> None:
    kafka.prepare(settings, paths)
    argv = kafka.server_argv(settings, paths)
    start_detached(argv, argv, paths.log_file("kafka"), paths.pid_file("kafka"), cwd=paths.kafka_dir)


def _start_postgres(settings: Settings, paths: StackPaths) -> None:
    postgres.prepare(settings, paths)
    record = start_detached(
        postgres.launch_argv(paths),
        postgres.server_argv(),
        paths.log_file("postgres"),
        paths.pid_file("postgres"),
        env=postgres.server_env(),
    )
    if not wait_for_argv(record):
        raise StackError("postgres", "chroot to exec the postmaster", paths.log_file("postgres"))


def _start_s3(server: s3.S3Server, settings: Settings, paths: StackPaths) -> None:
    s3.prepare(server, settings, paths)
    argv = s3.server_argv(server, settings, paths)
    start_detached(
        argv, argv, paths.log_file("s3"), paths.pid_file("s3"), env=s3.server_env(server, settings), cwd=paths.s3_dir
    )


def _apply_migrations(dsn: str) -> None:
    try:
        from pipeline.stores.migrate import apply_migrations
    except ModuleNotFoundError as error:
        if error.name not in {"pipeline.stores", "pipeline.stores.migrate"}:
            raise
        # NOTE: migrations are skipped until pipeline.stores.migrate exists; tables are then missing.
        _progress("postgres: pipeline.stores.migrate not found, database migrations skipped")
        return
    applied = apply_migrations(dsn)
    _progress(f"postgres: migrations applied: {', '.join(applied) if applied else 'none pending'}")


def up(settings: Settings) -> None:
    """Install, start and check the local stack, then create topics, tables and the bucket.

    Holds an exclusive lock on run/up.lock in the state folder, so two concurrent calls
    run one after the other instead of both starting the same service.
    """
    paths = StackPaths.from_settings(settings)
    for folder in (paths.state_dir, paths.logs_dir, paths.run_dir):
        folder.mkdir(parents=True, exist_ok=True)
    with open(paths.run_dir / "up.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _up_locked(settings, paths)


def _up_locked(settings: Settings, paths: StackPaths) -> None:
    started = time.monotonic()
    _progress(f"stack: state folder {paths.state_dir}, cache folder {settings.cache_dir}")

    installed = apt.ensure_packages()
    if installed:
        _progress(f"apt: installed {' '.join(installed)}")

    not_running = {name for name in SERVICE_PORTS if running_record(paths.pid_file(name)) is None}
    for name in sorted(set(SERVICE_PORTS) - not_running):
        _progress(f"{name}: already running (pid {running_record(paths.pid_file(name)).pid})")
    for name in sorted(not_running):
        _check_port_free(name, SERVICE_PORTS[name], paths)

    server = _install_all(settings, paths, not_running)
    if "kafka" in not_running:
        _progress(f"kafka: starting Apache Kafka {kafka.KAFKA_VERSION} on 127.0.0.1:{config.KAFKA_PORT}")
        _start_kafka(settings, paths)
    if "postgres" in not_running:
        _progress(f"postgres: starting PostgreSQL {postgres.PG_MAJOR} + TimescaleDB on 127.0.0.1:{config.POSTGRES_PORT}")
        _start_postgres(settings, paths)
    if "s3" in not_running:
        _progress(f"s3: starting {server.name} on 127.0.0.1:{config.S3_PORT}")
        _start_s3(server, settings, paths)

    _progress("stack: waiting for the services to answer")
    _wait_healthy(
        "postgres",
        paths,
        f"PostgreSQL to accept connections on 127.0.0.1:{config.POSTGRES_PORT}",
        lambda remaining: postgres.wait_accepting(config.POSTGRES_PORT, remaining) or "accepting",
    )
    postgres.ensure_database(config.POSTGRES_PORT)
    dsn = settings.database_dsn.reveal()
    pg_state = _wait_healthy(
        "postgres", paths, "the timescaledb extension in the spanline database", lambda _: postgres.check_health(dsn)
    )
    _progress(f"postgres: healthy ({pg_state})")

    kafka_state = _wait_healthy(
        "kafka",
        paths,
        f"a metadata response from {settings.kafka_bootstrap}",
        lambda remaining: kafka.check_health(settings.kafka_bootstrap, remaining),
    )
    _progress(f"kafka: healthy ({kafka_state})")

    s3_state = _wait_healthy(
        "s3", paths, f"an S3 response from {settings.s3_endpoint}", lambda _: s3.check_health(settings)
    )
    _progress(f"s3: healthy ({s3_state})")

    ensure_topics(settings.kafka_bootstrap)
    _progress("kafka: topics present")
    _apply_migrations(dsn)
    s3.ensure_bucket(settings)
    _progress(f"s3: bucket {settings.s3_bucket} present")
    _progress(f"stack: up in {time.monotonic() - started:.1f} s")


def down(settings: Settings) -> None:
    """Stop the services this state folder started; leave every other process alone."""
    paths = StackPaths.from_settings(settings)
    for name in ("kafka", "s3", "postgres"):
        outcome = stop_process(paths.pid_file(name), STOP_SIGNALS[name], timeout_s=60.0)
        _progress(f"{name}: {outcome}")


def status(settings: Settings) -> list[ServiceStatus]:
    """Return the state of each service from its PID file and /proc."""
    paths = StackPaths.from_settings(settings)
    statuses = []
    for name, port in SERVICE_PORTS.items():
        record = running_record(paths.pid_file(name))
        statuses.append(
            ServiceStatus(
                name=name,
                running=record is not None,
                pid=record.pid if record else None,
                port=port,
                log_file=str(paths.log_file(name)),
            )
        )
    return statuses
