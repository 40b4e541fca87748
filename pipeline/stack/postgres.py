"""TimescaleDB for the local stack: PostgreSQL 17 running inside a Debian trixie root folder.

Debian 12 has no TimescaleDB package, and trixie's needs trixie's libc, so mmdebstrap builds a
trixie root folder with postgresql-17 and postgresql-17-timescaledb once and keeps it as a tarball
in the cache. Each state folder gets its own extracted copy (about 575 MB). Its /var/lib/spanline/pgdata is the
data directory, and the server log goes to the state folder's logs.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from pipeline import config
from pipeline.config import Settings
from pipeline.stack.paths import StackPaths

logger = logging.getLogger(__name__)

PG_MAJOR = 17
PG_BIN = f"/usr/lib/postgresql/{PG_MAJOR}/bin"
# Path of the data directory as seen inside the root folder.
DATA_DIR_IN_ROOT = "/var/lib/spanline/pgdata"
ROOTFS_PACKAGES = (f"postgresql-{PG_MAJOR}", f"postgresql-{PG_MAJOR}-timescaledb")
SUITE = "trixie"
DATABASE = "spanline"
CONF_NAME = "spanline.conf"


def render_postgresql_conf(port: int, shared_buffers: str = "2GB") -> str:
    """Render the settings that `spanline.conf` adds on top of initdb's postgresql.conf."""
    lines = [
        "# Written by spanline stack up; edits are overwritten on the next start.",
        "shared_preload_libraries = 'timescaledb'",
        "listen_addresses = '127.0.0.1'",
        f"port = {port}",
        "unix_socket_directories = '/tmp'",
        f"shared_buffers = {shared_buffers}",
        "max_connections = 100",
        # Workers commit Kafka offsets in the same transaction as the rows, so exactly-once depends
        # on commits being durable: synchronous_commit and fsync stay on.
        "synchronous_commit = on",
        "fsync = on",
        # Large COPY batches otherwise force a checkpoint every few seconds.
        "max_wal_size = 4GB",
        # Every chunk of a hypertable touched by one query takes a lock.
        "max_locks_per_transaction = 256",
        "timescaledb.telemetry_level = off",
        "log_timezone = 'UTC'",
        "timezone = 'UTC'",
        "",
    ]
    return "\n".join(lines)


def rootfs_tarball(settings: Settings) -> Path:
    return settings.cache_dir / "timescaledb" / f"{SUITE}-postgresql-{PG_MAJOR}-timescaledb.tar"


def rootfs_dir(paths: StackPaths) -> Path:
    return paths.postgres_dir / "rootfs"


def build_rootfs_tarball(settings: Settings) -> Path:
    """Build the trixie root folder tarball with mmdebstrap unless the cache has it; return it."""
    tarball = rootfs_tarball(settings)
    if tarball.exists():
        return tarball
    if shutil.which("mmdebstrap") is None:
        raise RuntimeError("mmdebstrap was not found on PATH; install it with apt-get install mmdebstrap")

    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_name(tarball.name + ".partial.tar")
    partial.unlink(missing_ok=True)
    print(
        f"postgres: building a Debian {SUITE} root folder with {', '.join(ROOTFS_PACKAGES)} "
        f"into {tarball} (about a minute)",
        flush=True,
    )
    started = time.monotonic()
    subprocess.run(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=apt",
            f"--include={','.join(ROOTFS_PACKAGES)}",
            SUITE,
            str(partial),
        ],
        check=True,
    )
    partial.replace(tarball)
    print(f"postgres: root folder built in {time.monotonic() - started:.0f} s", flush=True)
    return tarball


def extract_rootfs(settings: Settings, paths: StackPaths) -> Path:
    """Extract the cached tarball into the state folder unless an extracted copy is complete."""
    root = rootfs_dir(paths)
    marker = paths.postgres_dir / "rootfs.complete"
    if marker.exists():
        return root
    tarball = build_rootfs_tarball(settings)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    print(f"postgres: extracting {tarball} into {root}", flush=True)
    subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-xf", str(tarball)], check=True)
    marker.write_text(str(tarball) + "\n")
    return root


def _chroot_as_postgres(root: Path, *argv: str) -> list[str]:
    return ["chroot", "--userspec=postgres:postgres", str(root), *argv]


def prepare(settings: Settings, paths: StackPaths) -> None:
    """Install the root folder, run initdb the first time and write spanline.conf."""
    root = extract_rootfs(settings, paths)
    data_dir = root / DATA_DIR_IN_ROOT.lstrip("/")
    if not (data_dir / "PG_VERSION").exists():
        if data_dir.exists():
            shutil.rmtree(data_dir)  # a half-finished initdb leaves a folder initdb refuses
        data_dir.mkdir(parents=True)
        subprocess.run(["chroot", str(root), "chown", "postgres:postgres", DATA_DIR_IN_ROOT], check=True)
        print(f"postgres: initdb in {data_dir}", flush=True)
        with open(paths.log_file("postgres-initdb"), "ab") as log:
            result = subprocess.run(
                _chroot_as_postgres(
                    root,
                    f"{PG_BIN}/initdb",
                    "-D",
                    DATA_DIR_IN_ROOT,
                    "--auth=trust",
                    "--username=postgres",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_server_env(),
            )
        if result.returncode != 0:
            raise RuntimeError(
                f"postgres: initdb in {data_dir} failed (exit {result.returncode}); "
                f"read {paths.log_file('postgres-initdb')}"
            )

    conf = data_dir / "postgresql.conf"
    include_line = f"include '{CONF_NAME}'\n"
    if include_line not in conf.read_text():
        with open(conf, "a") as handle:
            handle.write("\n" + include_line)
    custom = data_dir / CONF_NAME
    custom.write_text(render_postgresql_conf(config.POSTGRES_PORT))
    # initdb runs as postgres inside the root folder, so the file must belong to the same uid.
    owner = data_dir.stat()
    os.chown(custom, owner.st_uid, owner.st_gid)


def _server_env() -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "TZ": "UTC"}


def launch_argv(paths: StackPaths) -> list[str]:
    """Return the argv that starts the server: chroot, which then execs `server_argv()`."""
    return _chroot_as_postgres(rootfs_dir(paths), *server_argv())


def server_argv() -> list[str]:
    """Return the argv the postmaster runs as once chroot has exec'd it."""
    return [f"{PG_BIN}/postgres", "-D", DATA_DIR_IN_ROOT]


def server_env() -> dict[str, str]:
    return _server_env()


def admin_dsn(port: int = config.POSTGRES_PORT) -> str:
    return f"host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=3"


def wait_accepting(port: int, timeout_s: float) -> None:
    """Wait until the server accepts connections on 127.0.0.1:`port`; raise the last error."""
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(admin_dsn(port)) as connection:
                connection.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def ensure_database(port: int = config.POSTGRES_PORT) -> None:
    """Create the spanline database and the timescaledb extension in it unless they exist."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_dsn(port), autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
        if exists is None:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
            logger.info("database created name=%s port=%d", DATABASE, port)
    dsn = admin_dsn(port).replace("dbname=postgres", f"dbname={DATABASE}")
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")


def check_health(dsn: str) -> str:
    """Return the TimescaleDB version installed in the database at `dsn`."""
    import psycopg

    with psycopg.connect(dsn, connect_timeout=3) as connection:
        row = connection.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
        ).fetchone()
    if row is None:
        raise RuntimeError("the timescaledb extension is not installed in the database")
    return f"timescaledb {row[0]}"
