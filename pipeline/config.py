"""Settings shared by the CLI, the SDK, the workers and the local stack.

Every setting resolves in the same order: explicit argument, then environment variable, then the
documented default below. Environment variables are read when `Settings.from_env()` is called,
never at import time, so tests can point one process at several stacks.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

# Ports of the local stack. They are deliberately away from the usual defaults (9092, 5432, 9000)
# so the stack never collides with a Kafka, PostgreSQL or MinIO a developer already runs.
KAFKA_PORT = 19092
KAFKA_CONTROLLER_PORT = 19093
POSTGRES_PORT = 15432
S3_PORT = 19000
WORKER_WEB_PORT = 16066
FRAME_WORKER_WEB_PORT = 16067
RUNS_WORKER_WEB_PORT = 16068
OTLP_CONVERTER_WEB_PORT = 16069
REPLAY_PORT = 18080
OTLP_HTTP_PORT = 14318

# Topic names follow <product>.<dataset>.<stage>.v<N>, dot-separated only: Kafka folds "." and "_"
# together in its metric names, so mixing them makes two topics collide.
SPANS_TOPIC = "spanline.spans.v1"
FRAMES_TOPIC = "spanline.frames.v1"
SPANS_DLQ_TOPIC = "spanline.spans.v1.dlq"
FRAMES_DLQ_TOPIC = "spanline.frames.v1.dlq"
SPANS_ENRICHED_TOPIC = "spanline.spans.enriched.v1"
RUNS_TOPIC = "spanline.runs.v1"
PRICES_TOPIC = "spanline.prices.v1"
OTLP_TOPIC = "otlp_spans"

S3_BUCKET = "spanline-frames"
# Local-stack credentials only: the S3 server started by `spanline stack up` accepts exactly these.
S3_LOCAL_ACCESS_KEY = "spanline"
S3_LOCAL_SECRET_KEY = "spanline-local-secret"


def default_cache_dir() -> Path:
    """Return where downloads and builds of the local services are kept, outside the repository."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "spanline"


def default_state_dir() -> Path:
    """Return the one folder that contains the local stack's data, logs and PID files."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "spanline"


class Secret(str):
    """A string that never prints its value in logs, reprs or tracebacks."""

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:  # noqa: D105 - str() is used in f-strings and logging
        return "***"

    def reveal(self) -> str:
        return str.__str__(self)


@dataclass(frozen=True)
class Settings:
    """Resolved, immutable configuration. Build with `Settings.from_env()`."""

    kafka_bootstrap: str = f"127.0.0.1:{KAFKA_PORT}"
    # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, as Kafka clients name them.
    kafka_security_protocol: str = "PLAINTEXT"
    # PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; only read with a SASL_* protocol.
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: Secret | None = None
    # PEM bundle of the CA that signed the brokers' certificates; the system store when unset.
    kafka_ca_file: Path | None = None
    database_dsn: Secret = Secret(
        f"host=127.0.0.1 port={POSTGRES_PORT} user=postgres dbname=spanline"
    )
    s3_endpoint: str = f"127.0.0.1:{S3_PORT}"
    s3_access_key: Secret = Secret(S3_LOCAL_ACCESS_KEY)
    s3_secret_key: Secret = Secret(S3_LOCAL_SECRET_KEY)
    s3_secure: bool = False
    s3_bucket: str = S3_BUCKET
    s3_region: str = "us-east-1"
    spans_topic: str = SPANS_TOPIC
    frames_topic: str = FRAMES_TOPIC
    spans_dlq_topic: str = SPANS_DLQ_TOPIC
    frames_dlq_topic: str = FRAMES_DLQ_TOPIC
    spans_enriched_topic: str = SPANS_ENRICHED_TOPIC
    runs_topic: str = RUNS_TOPIC
    prices_topic: str = PRICES_TOPIC
    otlp_topic: str = OTLP_TOPIC
    # Workers join the consumer groups <prefix>-spans and <prefix>-frames.
    consumer_group_prefix: str = "spanline"
    # Operator prices (YAML) that take precedence over the genai-prices data; none by default.
    prices_file: Path | None = None
    # Frames larger than this are rejected by the SDK with an error naming the run and size. The
    # frames topic is created with max.message.bytes above it (see pipeline.stack.topics).
    max_frame_bytes: int = 8 * 1024 * 1024
    # A run with no new span for this many seconds is marked abandoned by the runs worker.
    run_idle_timeout_s: float = 300.0
    # The runs worker drops a finished run from its table (and changelog) this many seconds after
    # the run's last update; 0 keeps every run. Its final state stays in TimescaleDB.
    run_state_retention_s: float = 86_400.0
    cache_dir: Path = field(default_factory=default_cache_dir)
    state_dir: Path = field(default_factory=default_state_dir)

    @classmethod
    def from_env(cls, **overrides: object) -> "Settings":
        """Build settings from SPANLINE_* environment variables, then apply explicit overrides.

        Unknown override names raise TypeError, so a misspelt setting never passes silently.
        """
        _warn_unknown_variables(os.environ)
        values: dict[str, object] = {}
        for settings_field in fields(cls):
            env_name = "SPANLINE_" + settings_field.name.upper()
            raw = os.environ.get(env_name)
            if raw is None:
                continue
            values[settings_field.name] = _coerce(settings_field.name, raw, env_name)
        settings = cls(**values)  # type: ignore[arg-type]
        return replace(settings, **overrides) if overrides else settings


# SPANLINE_* variables read outside Settings (by the demo, replay, OTLP, helm install script and
# the Grafana provisioning).
_OTHER_VARIABLES = frozenset({
    "SPANLINE_SHARED_DATA", "SPANLINE_REPLAY_SECRET", "SPANLINE_OTLP_ENCODING",
    "SPANLINE_HELM_BIN_DIR", "SPANLINE_HELM_VERSION",
})
_OTHER_PREFIXES = ("SPANLINE_GRAFANA_",)
_warned_variables: set[str] = set()


def _warn_unknown_variables(environment: "os._Environ[str] | dict[str, str]") -> None:
    """Log each SPANLINE_* variable that no part of Spanline reads, once per process."""
    known = {"SPANLINE_" + settings_field.name.upper() for settings_field in fields(Settings)} | _OTHER_VARIABLES
    for name in sorted(environment):
        if not name.startswith("SPANLINE_") or name in known or name.startswith(_OTHER_PREFIXES):
            continue
        if name in _warned_variables:
            continue
        _warned_variables.add(name)
        logging.getLogger(__name__).warning(
            "environment variable %s is not a Spanline setting and is ignored; check its spelling "
            "against the settings in README.md", name,
        )


class ConfigError(ValueError):
    """A SPANLINE_* setting with an invalid value; the message names the variable and the fix."""


_SECRET_FIELDS = {"database_dsn", "s3_access_key", "s3_secret_key", "kafka_sasl_password"}
_INT_FIELDS = {"max_frame_bytes"}
_FLOAT_FIELDS = {"run_idle_timeout_s", "run_state_retention_s"}
_BOOL_FIELDS = {"s3_secure"}
_PATH_FIELDS = {"cache_dir", "state_dir", "prices_file", "kafka_ca_file"}


def _coerce(name: str, raw: str, env_name: str) -> object:
    if name in _SECRET_FIELDS:
        return Secret(raw)
    if name in _INT_FIELDS:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{env_name}={raw!r} is not a whole number of bytes") from None
    if name in _FLOAT_FIELDS:
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{env_name}={raw!r} is not a number of seconds") from None
    if name in _BOOL_FIELDS:
        if raw.lower() not in {"1", "0", "true", "false", "yes", "no"}:
            raise ConfigError(f"{env_name}={raw!r} is not a boolean; use true or false")
        return raw.lower() in {"1", "true", "yes"}
    if name in _PATH_FIELDS:
        return Path(raw)
    return raw


def shared_data_dir() -> Path:
    """Return the folder of recorded real agent runs: SPANLINE_SHARED_DATA, else ../shared/data.

    The default is relative to the repository root. The folder is optional, and everything
    that reads it logs or prints a reason and skips it when it is absent.
    """
    configured = os.environ.get("SPANLINE_SHARED_DATA")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"
