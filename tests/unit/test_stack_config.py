"""Rendering of the Kafka and PostgreSQL configs and the topic table of the local stack."""

from __future__ import annotations

import base64
from pathlib import Path

from pipeline import config
from pipeline.config import Settings
from pipeline.stack import kafka, postgres
from pipeline.stack.topics import FRAME_MESSAGE_MAX_BYTES, TOPICS


def _properties(text: str) -> dict[str, str]:
    pairs = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key] = value
    return pairs


def test_server_properties_bind_loopback_only():
    props = _properties(kafka.render_server_properties(Path("/state/kafka/data"), 19092, 19093))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"


def test_server_properties_combined_kraft_node():
    props = _properties(kafka.render_server_properties(Path("/state/kafka/data"), 19092, 19093))
    assert props["process.roles"] == "broker,controller"
    assert props["log.dirs"] == "/state/kafka/data"
    assert props["auto.create.topics.enable"] == "false"
    assert props["message.max.bytes"] == "16777216"
    assert props["transaction.state.log.replication.factor"] == "1"


def test_cluster_id_is_16_bytes_without_leading_dash():
    for _ in range(200):
        cluster_id = kafka.new_cluster_id()
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_postgresql_conf_keeps_commits_durable():
    conf = postgres.render_postgresql_conf(15432)
    assert "synchronous_commit = on" in conf
    assert "fsync = on" in conf
    assert "synchronous_commit = off" not in conf


def test_postgresql_conf_required_settings():
    conf = postgres.render_postgresql_conf(15432)
    for line in (
        "shared_preload_libraries = 'timescaledb'",
        "listen_addresses = '127.0.0.1'",
        "port = 15432",
        "unix_socket_directories = '/tmp'",
        "shared_buffers = 2GB",
        "max_connections = 100",
        "timescaledb.telemetry_level = off",
    ):
        assert line in conf.splitlines()


def test_topic_table_names_are_unique():
    names = [topic.name for topic in TOPICS]
    assert len(names) == len(set(names))


def test_topic_table_covers_settings_topics():
    settings = Settings()
    names = {topic.name for topic in TOPICS}
    for topic in (
        settings.spans_topic,
        settings.frames_topic,
        settings.spans_dlq_topic,
        settings.frames_dlq_topic,
        settings.spans_enriched_topic,
        settings.runs_topic,
        settings.prices_topic,
        settings.otlp_topic,
    ):
        assert topic in names


def test_topic_table_partitions_and_policies():
    by_name = {topic.name: topic for topic in TOPICS}
    assert by_name[config.SPANS_TOPIC].partitions == 4
    assert by_name[config.FRAMES_TOPIC].partitions == 2
    assert by_name[config.SPANS_DLQ_TOPIC].partitions == 1
    assert by_name[config.FRAMES_DLQ_TOPIC].partitions == 1
    assert by_name[config.RUNS_TOPIC].configs["cleanup.policy"] == "compact"
    assert by_name[config.PRICES_TOPIC].configs["cleanup.policy"] == "compact"
    assert by_name[config.OTLP_TOPIC].partitions == 2


def test_frame_topics_accept_max_frame():
    by_name = {topic.name: topic for topic in TOPICS}
    for name in (config.FRAMES_TOPIC, config.FRAMES_DLQ_TOPIC):
        assert int(by_name[name].configs["max.message.bytes"]) > Settings().max_frame_bytes
    assert FRAME_MESSAGE_MAX_BYTES == 16 * 1024 * 1024


def test_every_topic_has_purpose():
    for topic in TOPICS:
        assert topic.purpose, topic.name
