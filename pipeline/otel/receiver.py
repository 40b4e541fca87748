"""OTLP/HTTP trace receiver: `POST /v1/traces`, converted straight into span batches on Kafka.

Status codes follow the OTLP/HTTP specification. The receiver returns 200 with an
`ExportTraceServiceResponse` (with `partial_success` when spans were rejected) only after Kafka's
delivery reports confirmed every span batch and dead-letter record of the request. It returns 400
for a body that does not decode, 415 for an unsupported content type and 413 for a body over the
size limit. When the receiver or its producer is saturated it returns 429 or 503 with
`Retry-After`, so the exporter retries instead of losing data.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import zlib
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import PayloadEncodingError
from aiohttp.web_protocol import RequestPayloadError
from confluent_kafka import KafkaException, Producer
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pipeline.config import Settings
from pipeline.kafka_clients import librdkafka_config
from pipeline.otel.convert import ConversionState, ConvertedExport, OtlpDecodeError, convert_export
from pipeline.otel.outputs import (
    OTLP_EXPORTS_UNDECODABLE,
    count_outcome,
    otlp_dead_letter_topic,
    rejected_span_headers,
)

logger = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"
# Request bodies over this size (compressed or not) are rejected with 413.
MAX_BODY_BYTES = 16 * 1024 * 1024
# Requests converted and awaiting delivery at the same time; more get 429.
MAX_CONCURRENT_REQUESTS = 64
# Messages the producer may hold unsent; a request that would go past it gets 503.
PRODUCER_QUEUE_LIMIT = 50_000
DELIVERY_TIMEOUT_S = 30.0
RETRY_AFTER_S = 1

_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"
_RPC_INVALID_ARGUMENT = 3
_RPC_UNAVAILABLE = 14
_RPC_RESOURCE_EXHAUSTED = 8


class _Saturated(Exception):
    """The producer cannot take the request now; the client should retry later."""


@dataclass
class ReceiverConfig:
    """Limits of the receiver, with the module constants as defaults."""

    max_body_bytes: int = MAX_BODY_BYTES
    max_concurrent_requests: int = MAX_CONCURRENT_REQUESTS
    producer_queue_limit: int = PRODUCER_QUEUE_LIMIT
    delivery_timeout_s: float = DELIVERY_TIMEOUT_S
    # How long a stopping receiver waits for Kafka to confirm records already accepted.
    shutdown_timeout_s: float = 10.0


class KafkaDelivery:
    """A confluent-kafka producer whose delivery reports resolve asyncio futures.

    A daemon thread polls the producer so reports arrive while the event loop serves requests.
    """

    def __init__(self, settings: Settings, queue_limit: int) -> None:
        self._producer = Producer({
            **librdkafka_config(settings),
            "client.id": "spanline-otlp-receiver",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "zstd",
            "queue.buffering.max.messages": queue_limit * 2,
            "message.max.bytes": MAX_BODY_BYTES,
        })
        self.queue_limit = queue_limit
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_forever, name="otlp-delivery", daemon=True)
        self._poller.start()

    def _poll_forever(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def room_for(self, count: int) -> bool:
        return len(self._producer) + count <= self.queue_limit

    def produce(
        self, loop: asyncio.AbstractEventLoop, topic: str, key: bytes | None, value: bytes,
        headers: dict[str, bytes] | None = None,
    ) -> asyncio.Future[None]:
        """Hand one record to the producer; the future completes with its delivery report."""
        future: asyncio.Future[None] = loop.create_future()

        def on_delivery(error, message) -> None:  # noqa: ANN001 - confluent-kafka callback
            loop.call_soon_threadsafe(_resolve, future, error)

        try:
            self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
        except BufferError:
            raise _Saturated("the Kafka producer queue is full") from None
        return future

    def close(self, timeout_s: float = 10.0) -> int:
        self._stop.set()
        self._poller.join(timeout_s)
        return self._producer.flush(timeout_s)


def _resolve(future: asyncio.Future[None], error: object) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(KafkaException(error))


def create_receiver(settings: Settings, config: ReceiverConfig | None = None) -> web.Application:
    """Build the aiohttp application; the Kafka producer starts with the app and flushes on exit."""
    config = config or ReceiverConfig()
    app = web.Application(client_max_size=config.max_body_bytes)
    app["settings"] = settings
    app["config"] = config
    app["state"] = ConversionState()
    app["slots"] = asyncio.Semaphore(config.max_concurrent_requests)
    app.router.add_post(TRACES_PATH, handle_traces)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    app.cleanup_ctx.append(_delivery_context)
    return app


async def _delivery_context(app: web.Application):  # noqa: ANN202 - aiohttp cleanup context
    delivery = KafkaDelivery(app["settings"], app["config"].producer_queue_limit)
    app["delivery"] = delivery
    logger.info("OTLP receiver producing to spans_topic=%s", app["settings"].spans_topic)
    yield
    remaining = await asyncio.to_thread(delivery.close, app["config"].shutdown_timeout_s)
    if remaining:
        logger.error("receiver stopped with undelivered records count=%d", remaining)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def handle_traces(request: web.Request) -> web.Response:
    """Convert one OTLP/HTTP export and answer once Kafka has confirmed every record of it."""
    content_type = request.content_type
    if content_type == _PROTOBUF:
        encoding = "otlp_proto"
    elif content_type == _JSON:
        encoding = "otlp_json"
    else:
        return web.Response(
            status=415,
            text=f"unsupported Content-Type {content_type!r}; send {_PROTOBUF} or {_JSON}",
        )
    slots: asyncio.Semaphore = request.app["slots"]
    if slots.locked():
        return _error(request, encoding, 429, _RPC_RESOURCE_EXHAUSTED, "too many concurrent exports", retry=True)
    async with slots:
        try:
            body = await _read_body(request)
        except web.HTTPException as error:
            return _error(request, encoding, error.status, _RPC_INVALID_ARGUMENT, error.text or error.reason)
        try:
            # NOTE: conversion runs on the event loop because ConversionState is not thread-safe;
            # a very large export delays other requests for the time it takes to map.
            converted = convert_export(body, encoding, request.app["state"])
        except OtlpDecodeError as error:
            OTLP_EXPORTS_UNDECODABLE.labels(input="http").inc()
            logger.warning("undecodable OTLP export remote=%s bytes=%d error=%s", request.remote, len(body), error)
            return _error(request, encoding, 400, _RPC_INVALID_ARGUMENT, str(error))
        try:
            await _publish(request.app, converted)
        except _Saturated as error:
            return _error(request, encoding, 503, _RPC_UNAVAILABLE, str(error), retry=True)
        except (KafkaException, asyncio.TimeoutError) as error:
            logger.error("span batch delivery failed spans=%d error=%s", converted.accepted_count, error)
            return _error(request, encoding, 503, _RPC_UNAVAILABLE, f"Kafka did not confirm the spans: {error}", retry=True)
    count_outcome(converted, "http")
    return _success(encoding, converted)


async def _read_body(request: web.Request) -> bytes:
    limit = request.app["config"].max_body_bytes
    try:
        body = await request.read()
    except (PayloadEncodingError, RequestPayloadError) as error:
        # aiohttp inflates a gzip body while reading it, so a body that claims gzip and is not
        # fails here rather than below.
        raise web.HTTPBadRequest(text=f"invalid {request.headers.get('Content-Encoding')} body: {error}") from None
    content_encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if content_encoding in ("", "identity"):
        return body
    if content_encoding != "gzip":
        raise web.HTTPUnsupportedMediaType(text=f"unsupported Content-Encoding {content_encoding!r}; use gzip")
    if not body.startswith(b"\x1f\x8b"):
        # aiohttp's server already inflated the body (its auto_decompress is on by default).
        return body
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = decompressor.decompress(body, limit + 1)
    except zlib.error as error:
        raise web.HTTPBadRequest(text=f"invalid gzip body: {error}") from None
    if len(data) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(data))
    return data


async def _publish(app: web.Application, converted: ConvertedExport) -> None:
    delivery: KafkaDelivery = app["delivery"]
    settings: Settings = app["settings"]
    records = len(converted.batches) + len(converted.rejected)
    if not delivery.room_for(records):
        raise _Saturated(f"the Kafka producer holds more than {delivery.queue_limit} unsent records")
    loop = asyncio.get_running_loop()
    futures = [
        delivery.produce(loop, settings.spans_topic, batch.key, batch.value) for batch in converted.batches
    ]
    dead_letter_topic = otlp_dead_letter_topic(settings)
    for rejected in converted.rejected:
        futures.append(delivery.produce(
            loop, dead_letter_topic, rejected.trace_id.encode(), rejected.export.SerializeToString(),
            rejected_span_headers(rejected, "otlp-http", None, None),
        ))
    if futures:
        await asyncio.wait_for(asyncio.gather(*futures), app["config"].delivery_timeout_s)


def _success(encoding: str, converted: ConvertedExport) -> web.Response:
    response = ExportTraceServiceResponse()
    if converted.rejected:
        reasons: dict[str, int] = {}
        for rejected in converted.rejected:
            reasons[rejected.reason] = reasons.get(rejected.reason, 0) + 1
        first = converted.rejected[0]
        response.partial_success.rejected_spans = len(converted.rejected)
        response.partial_success.error_message = (
            "rejected spans by reason: "
            + ", ".join(f"{reason}={count}" for reason, count in sorted(reasons.items()))
            + f"; first: span {first.span_id}: {first.detail}"
        )
    if encoding == "otlp_json":
        return web.json_response(MessageToDict(response))
    return web.Response(body=response.SerializeToString(), content_type=_PROTOBUF)


def _error(
    request: web.Request, encoding: str, status: int, rpc_code: int, message: str, *, retry: bool = False
) -> web.Response:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if retry else {}
    if encoding == "otlp_json":
        return web.json_response({"code": rpc_code, "message": message}, status=status, headers=headers)
    return web.Response(
        status=status, body=rpc_status_protobuf(rpc_code, message), content_type=_PROTOBUF, headers=headers
    )


def rpc_status_protobuf(code: int, message: str) -> bytes:
    """Encode a `google.rpc.Status` with code (field 1) and message (field 2), no details."""
    encoded = message.encode("utf-8")
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(encoded)) + encoded


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def serve(settings: Settings, host: str, port: int, config: ReceiverConfig | None = None) -> None:
    """Run the receiver until interrupted."""
    logger.info("OTLP/HTTP receiver listening on http://%s:%d%s", host, port, TRACES_PATH)
    web.run_app(create_receiver(settings, config), host=host, port=port, print=None)


