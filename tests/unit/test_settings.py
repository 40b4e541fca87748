"""Settings from SPANLINE_* variables and the Kafka client options derived from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import Secret, Settings
from pipeline.kafka_clients import librdkafka_config


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANLINE_KAFKA_BOOTSTRAP", "broker:9093")
    monkeypatch.setenv("SPANLINE_MAX_FRAME_BYTES", "1048576")
    monkeypatch.setenv("SPANLINE_S3_SECURE", "true")
    monkeypatch.setenv("SPANLINE_PRICES_FILE", "/etc/prices.yaml")
    monkeypatch.setenv("SPANLINE_RUN_IDLE_TIMEOUT_S", "12.5")
    settings = Settings.from_env()
    assert settings.kafka_bootstrap == "broker:9093"
    assert settings.max_frame_bytes == 1_048_576
    assert settings.s3_secure is True
    assert settings.prices_file == Path("/etc/prices.yaml")
    assert settings.run_idle_timeout_s == 12.5


@pytest.mark.parametrize(("name", "value", "message"), [
    ("SPANLINE_MAX_FRAME_BYTES", "abc", "not a whole number of bytes"),
    ("SPANLINE_S3_SECURE", "maybe", "not a boolean"),
    ("SPANLINE_RUN_IDLE_TIMEOUT_S", "soon", "not a number of seconds"),
])
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message) as raised:
        Settings.from_env()
    assert name in str(raised.value)


def test_unknown_override_rejected() -> None:
    with pytest.raises(TypeError):
        Settings.from_env(kafka_bootstarp="x")


def test_secrets_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANLINE_S3_SECRET_KEY", "hunter2-very-secret")
    settings = Settings.from_env()
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in f"{settings.s3_secret_key}"
    assert settings.s3_secret_key.reveal() == "hunter2-very-secret"


def test_plaintext_kafka_config() -> None:
    config = librdkafka_config(Settings())
    assert config == {"bootstrap.servers": "127.0.0.1:19092", "security.protocol": "PLAINTEXT"}


def test_sasl_ssl_kafka_config() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="spanline", kafka_sasl_password=Secret("pw"),
        kafka_ca_file=Path("/ca.pem"),
    )
    config = librdkafka_config(settings)
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["sasl.username"] == "spanline"
    assert config["sasl.password"] == "pw"
    assert config["ssl.ca.location"] == "/ca.pem"


@pytest.mark.parametrize(("fields", "message"), [
    ({"kafka_security_protocol": "FOO"}, "SPANLINE_KAFKA_SECURITY_PROTOCOL='FOO' is invalid"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "GSSAPI"},
     "SPANLINE_KAFKA_SASL_MECHANISM='GSSAPI' is invalid"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN"},
     "needs SPANLINE_KAFKA_SASL_USERNAME"),
])
def test_invalid_kafka_security_rejected(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        librdkafka_config(Settings(**fields))


def test_unknown_variable_is_reported_once(monkeypatch, caplog) -> None:
    import logging

    monkeypatch.setenv("SPANLINE_KAFKA_BOOTSTRAPP", "127.0.0.1:9092")
    monkeypatch.setenv("SPANLINE_SHARED_DATA", "/data")
    with caplog.at_level(logging.WARNING, logger="pipeline.config"):
        Settings.from_env()
        Settings.from_env()

    warnings = [record.getMessage() for record in caplog.records]
    assert len([text for text in warnings if "SPANLINE_KAFKA_BOOTSTRAPP" in text]) == 1
    assert not any("SPANLINE_SHARED_DATA" in text for text in warnings)
