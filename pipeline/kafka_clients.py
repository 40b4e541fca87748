"""Kafka client settings shared by the SDK, the admin tools and the faust workers.

librdkafka (confluent-kafka) and aiokafka (under faust) spell the same security settings
differently; both are derived here from one `Settings`, so a deployment sets them once.
"""

from __future__ import annotations

import ssl
from typing import Any

from pipeline.config import Settings

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _check(settings: Settings) -> None:
    protocol = settings.kafka_security_protocol
    if protocol not in SECURITY_PROTOCOLS:
        raise ValueError(
            f"SPANLINE_KAFKA_SECURITY_PROTOCOL={protocol!r} is invalid; "
            f"use one of {', '.join(SECURITY_PROTOCOLS)}"
        )
    if protocol.startswith("SASL"):
        if settings.kafka_sasl_mechanism not in SASL_MECHANISMS:
            raise ValueError(
                f"SPANLINE_KAFKA_SASL_MECHANISM={settings.kafka_sasl_mechanism!r} is invalid "
                f"with {protocol}; use one of {', '.join(SASL_MECHANISMS)}"
            )
        if not settings.kafka_sasl_username or settings.kafka_sasl_password is None:
            raise ValueError(
                f"{protocol} needs SPANLINE_KAFKA_SASL_USERNAME and SPANLINE_KAFKA_SASL_PASSWORD"
            )


def librdkafka_config(settings: Settings) -> dict[str, Any]:
    """Return bootstrap and security keys for a confluent-kafka Producer, Consumer or AdminClient."""
    _check(settings)
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol.startswith("SASL"):
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.username"] = settings.kafka_sasl_username
        config["sasl.password"] = settings.kafka_sasl_password.reveal()  # type: ignore[union-attr]
    if settings.kafka_ca_file is not None:
        config["ssl.ca.location"] = str(settings.kafka_ca_file)
    return config


def faust_credentials(settings: Settings) -> Any:
    """Return faust's broker_credentials for these settings, or None for PLAINTEXT."""
    import faust

    _check(settings)
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol.endswith("SSL"):
        context = ssl.create_default_context(
            cafile=str(settings.kafka_ca_file) if settings.kafka_ca_file else None
        )
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password.reveal(),  # type: ignore[union-attr]
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=context,
    )
