"""An S3-compatible object store for the local stack, built from source with `go install`.

Versity's S3 gateway (Apache-2.0, posix backend: buckets are folders, objects are files) is the
first choice; SeaweedFS (Apache-2.0) is the fallback when it does not build. MinIO's server is
AGPL-licensed and is deliberately not used; the `minio` Python SDK (Apache-2.0) is only a client.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline import config
from pipeline.config import Settings
from pipeline.stack.paths import StackPaths

logger = logging.getLogger(__name__)

# Ports of SeaweedFS's internal services, next to S3_PORT and away from their defaults.
SEAWEED_MASTER_PORT = 19333
SEAWEED_VOLUME_PORT = 19334
SEAWEED_FILER_PORT = 19888


@dataclass(frozen=True)
class S3Server:
    """One buildable S3 server: its Go package at an exact version and the binary it installs."""

    name: str
    package: str
    binary: str


VERSITYGW = S3Server("versitygw", "github.com/versity/versitygw/cmd/versitygw@v1.8.0", "versitygw")
SEAWEEDFS = S3Server(
    "seaweedfs", "github.com/seaweedfs/seaweedfs/weed@v0.0.0-20261109003541-7506e5f91cd6", "weed"
)
CANDIDATES = (VERSITYGW, SEAWEEDFS)


def gobin(settings: Settings) -> Path:
    return settings.cache_dir / "go" / "bin"


def installed_server(settings: Settings) -> S3Server | None:
    """Return the first candidate whose binary is already in the cache."""
    for server in CANDIDATES:
        if (gobin(settings) / server.binary).exists():
            return server
    return None


def install(settings: Settings, paths: StackPaths) -> S3Server:
    """Build the first candidate that compiles, unless one is already built; return it."""
    server = installed_server(settings)
    if server is not None:
        return server
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise RuntimeError("go was not found on PATH or in /usr/local/go/bin; install Go 1.22 or newer")

    env = dict(os.environ, GOBIN=str(gobin(settings)))
    build_log = paths.log_file("s3-build")
    build_log.parent.mkdir(parents=True, exist_ok=True)
    for candidate in CANDIDATES:
        print(f"s3: building {candidate.package} with go install (a few minutes the first time)", flush=True)
        started = time.monotonic()
        with open(build_log, "ab") as log:
            result = subprocess.run([go, "install", candidate.package], env=env, stdout=log, stderr=subprocess.STDOUT)
        if result.returncode == 0:
            print(f"s3: built {candidate.name} in {time.monotonic() - started:.0f} s", flush=True)
            return candidate
        print(f"s3: building {candidate.name} failed (exit {result.returncode}); see {build_log}", flush=True)
    raise RuntimeError(f"no S3 server could be built; read {build_log}")


def prepare(server: S3Server, settings: Settings, paths: StackPaths) -> None:
    """Create the data folder and, for SeaweedFS, its identity file."""
    (paths.s3_dir / "data").mkdir(parents=True, exist_ok=True)
    if server is SEAWEEDFS:
        identities = {
            "identities": [
                {
                    "name": "spanline",
                    "credentials": [
                        {
                            "accessKey": settings.s3_access_key.reveal(),
                            "secretKey": settings.s3_secret_key.reveal(),
                        }
                    ],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        identity_file = paths.s3_dir / "s3-identities.json"
        identity_file.write_text(json.dumps(identities, indent=2))
        identity_file.chmod(0o600)


def server_argv(server: S3Server, settings: Settings, paths: StackPaths) -> list[str]:
    """Return the argv of the S3 server, bound to 127.0.0.1:S3_PORT."""
    binary = str(gobin(settings) / server.binary)
    data_dir = str(paths.s3_dir / "data")
    if server is VERSITYGW:
        # Credentials go through the environment (see server_env) so `ps` does not show them.
        # --quiet drops the per-request line on stdout, which would grow the log without bound.
        return [
            binary,
            "--quiet",
            "--port",
            f"127.0.0.1:{config.S3_PORT}",
            "--region",
            settings.s3_region,
            "posix",
            data_dir,
        ]
    # NOTE: the SeaweedFS path has not been run on this kind of machine; versitygw built first.
    return [
        binary,
        "server",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={SEAWEED_MASTER_PORT}",
        f"-volume.port={SEAWEED_VOLUME_PORT}",
        "-filer",
        f"-filer.port={SEAWEED_FILER_PORT}",
        "-s3",
        f"-s3.port={config.S3_PORT}",
        f"-s3.config={paths.s3_dir / 's3-identities.json'}",
    ]


def server_env(server: S3Server, settings: Settings) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}
    if server is VERSITYGW:
        env["ROOT_ACCESS_KEY"] = settings.s3_access_key.reveal()
        env["ROOT_SECRET_KEY"] = settings.s3_secret_key.reveal()
    return env


def make_client(settings: Settings):  # -> minio.Minio, imported lazily
    from minio import Minio

    return Minio(
        settings.s3_endpoint,
        access_key=settings.s3_access_key.reveal(),
        secret_key=settings.s3_secret_key.reveal(),
        secure=settings.s3_secure,
        region=settings.s3_region,
    )


def check_health(settings: Settings) -> str:
    """Return whether the bucket exists, after a signed request to the S3 endpoint succeeded."""
    exists = make_client(settings).bucket_exists(settings.s3_bucket)
    return f"bucket {settings.s3_bucket} {'present' if exists else 'absent'}"


def ensure_bucket(settings: Settings) -> None:
    """Create `settings.s3_bucket` unless it exists."""
    client = make_client(settings)
    if client.bucket_exists(settings.s3_bucket):
        return
    client.make_bucket(settings.s3_bucket)
    logger.info("bucket created bucket=%s endpoint=%s", settings.s3_bucket, settings.s3_endpoint)
