"""`spanline stack topics --plan-json` against the live broker: names, partitions and configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from confluent_kafka.admin import AdminClient, ConfigResource

from pipeline.config import Settings


def test_plan_creates_topics_as_planned(live_settings: Settings) -> None:
    suffix = uuid.uuid4().hex[:8]
    spans, runs = f"plan-{suffix}.spans", f"plan-{suffix}.runs"
    plan = {
        "spans": {"name": spans, "partitions": 3, "replicationFactor": 1, "config": {"retention.ms": "3600000"}},
        "runs": {"name": runs, "partitions": 3, "replicationFactor": 1, "config": {"cleanup.policy": "compact"}},
    }
    env = {**os.environ, "SPANLINE_KAFKA_BOOTSTRAP": live_settings.kafka_bootstrap}
    admin = AdminClient({"bootstrap.servers": live_settings.kafka_bootstrap})
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "stack", "topics", "--plan-json", json.dumps(plan)],
            capture_output=True, text=True, timeout=120, env=env,
        )
        assert result.returncode == 0, result.stdout + result.stderr

        metadata = admin.list_topics(timeout=30).topics
        assert len(metadata[spans].partitions) == 3
        assert len(metadata[runs].partitions) == 3
        resources = [ConfigResource("topic", spans), ConfigResource("topic", runs)]
        configs = {resource.name: future.result(30) for resource, future in admin.describe_configs(resources).items()}
        assert configs[spans]["retention.ms"].value == "3600000"
        assert configs[runs]["cleanup.policy"].value == "compact"
    finally:
        admin.delete_topics([spans, runs], operation_timeout=30)
