"""Fixtures for tests against the live local stack (Kafka, TimescaleDB, S3) that `make test` starts.

Each integration test gets its own topics and consumer-group prefix, so tests never read each
other's messages and the demo's workers never join a test's group.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from pipeline.config import Settings, shared_data_dir

REPO_ROOT = Path(__file__).resolve().parents[1]


def _port_open(host_port: str) -> bool:
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def live_settings() -> Settings:
    """Settings of the running local stack; starts it when it is not running."""
    settings = Settings.from_env()
    dsn_port = settings.database_dsn.reveal().split("port=")[1].split()[0]
    reachable = (
        _port_open(settings.kafka_bootstrap)
        and _port_open(f"127.0.0.1:{dsn_port}")
        and _port_open(settings.s3_endpoint)
    )
    if not reachable:
        from pipeline.stack.manager import up

        up(settings)
    print(
        f"\nlive stack: kafka={settings.kafka_bootstrap} s3={settings.s3_endpoint} "
        f"postgres port={dsn_port}"
    )
    return settings


@dataclass(frozen=True)
class IsolatedPipeline:
    """Settings with test-only topics and groups, and the environment that carries them."""

    settings: Settings
    env: dict[str, str]
    state_dir: Path


@pytest.fixture
def isolated(live_settings: Settings, tmp_path: Path) -> Iterator[IsolatedPipeline]:
    """Create test-only topics (4 span partitions) and yield settings that point at them."""
    from confluent_kafka.admin import AdminClient, NewTopic

    suffix = uuid.uuid4().hex[:10]
    topics = {
        "spans_topic": f"test.{suffix}.spans",
        "frames_topic": f"test.{suffix}.frames",
        "spans_dlq_topic": f"test.{suffix}.spans.dlq",
        "frames_dlq_topic": f"test.{suffix}.frames.dlq",
        "spans_enriched_topic": f"test.{suffix}.spans.enriched",
        "runs_topic": f"test.{suffix}.runs",
        # An empty prices topic: workers fall back to genai-prices data plus SPANLINE_PRICES_FILE,
        # whatever operator prices someone published on the shared topic.
        "prices_topic": f"test.{suffix}.prices",
    }
    partitions = {"spans_topic": 4, "frames_topic": 2, "spans_enriched_topic": 4, "runs_topic": 4}
    admin = AdminClient({"bootstrap.servers": live_settings.kafka_bootstrap})
    big_messages = {"max.message.bytes": str(16 * 1024 * 1024)}
    futures = admin.create_topics([
        NewTopic(name, num_partitions=partitions.get(field, 1), replication_factor=1,
                 config=big_messages)
        for field, name in topics.items()
    ])
    for future in futures.values():
        future.result(timeout=30)

    state_dir = tmp_path / "state"
    settings = replace(
        live_settings,
        consumer_group_prefix=f"test-{suffix}",
        state_dir=state_dir,
        **topics,
    )
    env = {f"SPANLINE_{field.upper()}": name for field, name in topics.items()}
    env["SPANLINE_CONSUMER_GROUP_PREFIX"] = settings.consumer_group_prefix
    env["SPANLINE_STATE_DIR"] = str(state_dir)
    if settings.prices_file is not None:
        env["SPANLINE_PRICES_FILE"] = str(settings.prices_file)
    yield IsolatedPipeline(settings=settings, env=env, state_dir=state_dir)

    admin.delete_topics(list(topics.values()), operation_timeout=30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The recorded real runs; tests that need them skip when the folder is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"recorded runs not found at {path}; set SPANLINE_SHARED_DATA to run this test")
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests under tests/integration need the live stack whatever their own markers say.
    for item in items:
        if "tests/integration" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)
