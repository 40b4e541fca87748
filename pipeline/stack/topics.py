"""Kafka topics of Spanline as data, and their idempotent creation.

`TOPICS` is the single table of topic names, partition counts and configs. The local stack creates
topics from it, and docs and deployment manifests are meant to be generated from it, so a topic is
declared in one place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pipeline import config

logger = logging.getLogger(__name__)

HOUR_MS = 60 * 60 * 1000
DAY_MS = 24 * HOUR_MS
# Frames carry screenshots of a few MB. The SDK rejects frames over Settings.max_frame_bytes (8 MiB
# by default), so topics that carry frame bytes accept twice that and leave room for the envelope.
FRAME_MESSAGE_MAX_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class TopicSpec:
    """One Kafka topic: name, partition count, topic-level configs and a one-line purpose.

    `replication_factor` None means the factor given to `ensure_topics`.
    """

    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)
    purpose: str = ""
    replication_factor: int | None = None


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        config.SPANS_TOPIC,
        4,
        {"retention.ms": str(DAY_MS)},
        "Avro span batches from the SDK, keyed by run id",
    ),
    TopicSpec(
        config.FRAMES_TOPIC,
        2,
        {"retention.ms": str(DAY_MS), "max.message.bytes": str(FRAME_MESSAGE_MAX_BYTES)},
        "Avro frames (screenshots, inbox views) from the SDK, keyed by run id",
    ),
    TopicSpec(
        config.SPANS_DLQ_TOPIC,
        1,
        {"retention.ms": str(7 * DAY_MS)},
        "span messages the span worker could not decode, original key and bytes",
    ),
    TopicSpec(
        config.FRAMES_DLQ_TOPIC,
        1,
        {"retention.ms": str(7 * DAY_MS), "max.message.bytes": str(FRAME_MESSAGE_MAX_BYTES)},
        "frame messages the frame worker could not decode, original key and bytes",
    ),
    TopicSpec(
        config.SPANS_ENRICHED_TOPIC,
        4,
        {"retention.ms": str(DAY_MS)},
        "priced span batches for downstream consumers",
    ),
    TopicSpec(
        config.RUNS_TOPIC,
        4,
        {"cleanup.policy": "compact"},
        "run state keyed by run id; compaction keeps the latest record per run",
    ),
    TopicSpec(
        config.PRICES_TOPIC,
        1,
        {"cleanup.policy": "compact"},
        "model prices; compaction keeps the latest record per key",
    ),
    TopicSpec(
        config.OTLP_TOPIC,
        2,
        {},
        "OTLP trace exports from an OpenTelemetry Collector's Kafka exporter (no keys)",
    ),
    TopicSpec(
        config.OTLP_TOPIC + ".dlq",
        1,
        {"retention.ms": str(7 * DAY_MS)},
        "OTLP messages or single spans the converter rejected, with dlq.* headers",
    ),
)

# Topics keyed by run id; they share one partition count (see ensure_topics).
RUN_KEYED_TOPICS = frozenset({"spanline.spans.v1", "spanline.spans.enriched.v1", "spanline.runs.v1"})

# A single local broker cannot hold more than one replica of a partition.
LOCAL_REPLICATION_FACTOR = 1


class TopicPlanError(ValueError):
    """A topic plan that cannot be applied; the message names the entry and the fix."""


# Keys of the run-keyed topics in a plan (the Helm chart's `topics` values use the same names).
_RUN_KEYED_PLAN_KEYS = ("spans", "spansEnriched", "runs")


def parse_topic_plan(text: str) -> tuple[TopicSpec, ...]:
    """Parse a JSON topic plan: {"<key>": {"name", "partitions", "replicationFactor", "config"}}.

    The Helm chart's topics Job passes its `topics` values this way, so the topics get the
    names, partitions, replication and configs set there. Raises TopicPlanError when an entry is
    invalid or the run-keyed topics (spans, spansEnriched, runs) differ in partitions.
    """
    import json

    try:
        plan = json.loads(text)
    except json.JSONDecodeError as error:
        raise TopicPlanError(f"topic plan is not valid JSON: {error}") from None
    if not isinstance(plan, dict) or not plan:
        raise TopicPlanError("topic plan must be a non-empty JSON object of topic entries")

    specs = []
    for key, entry in plan.items():
        if not isinstance(entry, dict):
            raise TopicPlanError(f"topic plan entry {key!r} must be an object")
        name = entry.get("name")
        partitions = entry.get("partitions")
        replication = entry.get("replicationFactor")
        configs = entry.get("config") or {}
        if not isinstance(name, str) or not name:
            raise TopicPlanError(f"topic plan entry {key!r} has no name")
        for field_name, value in (("partitions", partitions), ("replicationFactor", replication)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise TopicPlanError(f"topic plan entry {key!r}: {field_name}={value!r} must be a whole number of 1 or more")
        if not isinstance(configs, dict):
            raise TopicPlanError(f"topic plan entry {key!r}: config must be an object")
        specs.append(TopicSpec(name, partitions, {k: str(v) for k, v in configs.items()}, key, replication))

    run_keyed = {key: plan[key]["partitions"] for key in _RUN_KEYED_PLAN_KEYS if key in plan}
    if len(set(run_keyed.values())) > 1:
        raise TopicPlanError(
            f"run-keyed topics must have equal partition counts, got {run_keyed}; "
            "the runs worker's tables are partitioned like the span topic"
        )
    return tuple(specs)


def ensure_topics(
    bootstrap: str,
    timeout_s: float = 30.0,
    *,
    client_config: dict | None = None,
    replication_factor: int = LOCAL_REPLICATION_FACTOR,
    run_keyed_partitions: int | None = None,
    topics: tuple[TopicSpec, ...] = TOPICS,
) -> None:
    """Create every topic in `topics` that the cluster at `bootstrap` does not have yet.

    Existing topics are left as they are, including their partition counts and configs.
    `client_config` adds librdkafka keys (security settings) for a remote cluster, and
    `run_keyed_partitions` overrides the partition count of every topic keyed by run id, which
    must all be equal so that faust's run tables stay co-partitioned with the span topic.
    Raises RuntimeError naming the topic when the broker rejects a creation.
    """
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({**(client_config or {}), "bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [topic for topic in topics if topic.name not in existing]
    if not missing:
        logger.info("topics present count=%d bootstrap=%s", len(topics), bootstrap)
        return

    new_topics = [
        NewTopic(
            topic.name,
            num_partitions=(
                run_keyed_partitions
                if run_keyed_partitions and topic.name in RUN_KEYED_TOPICS
                else topic.partitions
            ),
            replication_factor=topic.replication_factor or replication_factor,
            config=dict(topic.configs),
        )
        for topic in missing
    ]
    futures = admin.create_topics(new_topics, request_timeout=timeout_s)
    for name, future in futures.items():
        try:
            future.result()
        except Exception as error:  # confluent_kafka raises KafkaException wrapping a KafkaError
            kafka_error = error.args[0] if error.args else None
            # Another process may have created it between list_topics and create_topics.
            if getattr(kafka_error, "name", lambda: "")() == "TOPIC_ALREADY_EXISTS":
                continue
            raise RuntimeError(
                f"creating Kafka topic {name!r} at {bootstrap} failed: {error}; "
                "check the broker log (spanline stack status prints its path)"
            ) from error
        logger.info("topic created topic=%s bootstrap=%s", name, bootstrap)
