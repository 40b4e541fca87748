"""Every Kafka client outside the SDK and the workers gets the SASL and TLS settings too.

Each client's constructor is replaced by one that keeps the configuration it was given and then
stops the caller, so no connection is attempted.
"""

from __future__ import annotations

from typing import Any

import confluent_kafka
import pytest

from pipeline.config import Secret, Settings
from pipeline.otel.receiver import KafkaDelivery
from pipeline.pricing.stream import PriceBookSource, PriceTopicReader
from pipeline.pricing.topic import publish, read_all

SECURE = Settings(
    kafka_bootstrap="broker.example:9093",
    kafka_security_protocol="SASL_SSL",
    kafka_sasl_mechanism="SCRAM-SHA-512",
    kafka_sasl_username="spanline",
    kafka_sasl_password=Secret("not-a-real-password"),
)


class ClientBuilt(Exception):
    """Raised by the stand-in constructor once it has kept the configuration."""


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    configs: list[dict[str, Any]] = []

    def keep(config: dict[str, Any]) -> None:
        configs.append(config)
        raise ClientBuilt

    monkeypatch.setattr(confluent_kafka, "Producer", keep)
    monkeypatch.setattr(confluent_kafka, "Consumer", keep)
    monkeypatch.setattr("pipeline.otel.receiver.Producer", keep)
    return configs


def assert_secure(config: dict[str, Any]) -> None:
    assert config["bootstrap.servers"] == "broker.example:9093"
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["sasl.username"] == "spanline"
    assert config["sasl.password"] == "not-a-real-password"


def test_price_publisher_uses_security(captured: list[dict[str, Any]]) -> None:
    with pytest.raises(ClientBuilt):
        publish(SECURE, [])
    assert_secure(captured[0])


def test_price_reader_uses_security(captured: list[dict[str, Any]]) -> None:
    with pytest.raises(ClientBuilt):
        list(read_all(SECURE))
    assert_secure(captured[0])


def test_price_stream_uses_security(captured: list[dict[str, Any]]) -> None:
    reader = PriceTopicReader(SECURE, PriceBookSource(SECURE))
    with pytest.raises(ClientBuilt):
        reader._follow()
    assert_secure(captured[0])


def test_otlp_receiver_producer_uses_security(captured: list[dict[str, Any]]) -> None:
    with pytest.raises(ClientBuilt):
        KafkaDelivery(SECURE, queue_limit=10)
    assert_secure(captured[0])
