"""The OTLP/HTTP receiver returns 429 and 503 with Retry-After when Kafka cannot take an export,
and 400 for a body it cannot read.

The receiver runs in-process on 127.0.0.1 with a real confluent-kafka producer. Its broker is a
TCP listener started by the test that accepts connections and never replies. No record is ever
confirmed, which is what a stalled or unreachable cluster looks like to the producer.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator

import aiohttp
import pytest
from aiohttp import web

from pipeline.config import Settings
from pipeline.otel.receiver import RETRY_AFTER_S, TRACES_PATH, ReceiverConfig, create_receiver
from pipeline.otel.samples import otlp_json_export, span_json

RPC_UNAVAILABLE = 14
RPC_RESOURCE_EXHAUSTED = 8


@pytest.fixture
def silent_broker() -> Iterator[str]:
    """Listen on a free loopback port, accept every connection and never send a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _address = listener.accept()
            except OSError:
                continue
            accepted.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(2)
    for connection in accepted:
        connection.close()
    listener.close()


def export_body(runs: int) -> bytes:
    """One OTLP/JSON export with one LLM span in each of `runs` conversations."""
    now = time.time_ns()
    spans = [
        span_json(
            "chat gpt-4o-mini",
            f"{run + 1:032x}",
            f"{run + 1:016x}",
            now - 1_000_000,
            now,
            {"gen_ai.operation.name": "chat", "gen_ai.conversation.id": f"conversation-{run}"},
        )
        for run in range(runs)
    ]
    return json.dumps(otlp_json_export(spans)).encode()


async def post_exports(broker: str, config: ReceiverConfig, bodies: list[bytes]) -> list[tuple[int, dict, dict]]:
    """Serve the receiver, post `bodies` at once and return (status, headers, JSON body) of each."""
    app = create_receiver(Settings(kafka_bootstrap=broker), config)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}{TRACES_PATH}"

    async def post(session: aiohttp.ClientSession, body: bytes, delay_s: float) -> tuple[int, dict, dict]:
        await asyncio.sleep(delay_s)
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
            return response.status, dict(response.headers), await response.json()

    try:
        async with aiohttp.ClientSession() as session:
            # Later requests start 0.2 s after the first, so the first has already taken its slot.
            return list(await asyncio.gather(*(post(session, body, 0.2 * index) for index, body in enumerate(bodies))))
    finally:
        await runner.cleanup()


def test_unconfirmed_export_gets_503(silent_broker: str) -> None:
    config = ReceiverConfig(delivery_timeout_s=0.5, shutdown_timeout_s=0.5)

    ((status, headers, body),) = asyncio.run(post_exports(silent_broker, config, [export_body(1)]))

    assert status == 503
    assert headers["Retry-After"] == str(RETRY_AFTER_S)
    assert body["code"] == RPC_UNAVAILABLE
    assert "Kafka did not confirm" in body["message"]


def test_export_over_concurrency_limit_gets_429(silent_broker: str) -> None:
    config = ReceiverConfig(max_concurrent_requests=1, delivery_timeout_s=1.5, shutdown_timeout_s=0.5)

    first, second = asyncio.run(post_exports(silent_broker, config, [export_body(1), export_body(1)]))

    assert first[0] == 503
    assert second[0] == 429
    assert second[1]["Retry-After"] == str(RETRY_AFTER_S)
    assert second[2]["code"] == RPC_RESOURCE_EXHAUSTED


def test_export_over_producer_queue_gets_503(silent_broker: str) -> None:
    # Three conversations become three span batches, one more than the producer may hold.
    config = ReceiverConfig(producer_queue_limit=2, delivery_timeout_s=0.5, shutdown_timeout_s=0.5)

    ((status, headers, body),) = asyncio.run(post_exports(silent_broker, config, [export_body(3)]))

    assert status == 503
    assert headers["Retry-After"] == str(RETRY_AFTER_S)
    assert "holds more than 2 unsent records" in body["message"]


async def post_raw(broker: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """Serve the receiver and post `body` with `headers`; return the status and response text."""
    app = create_receiver(Settings(kafka_bootstrap=broker), ReceiverConfig(shutdown_timeout_s=0.5))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            url = f"http://127.0.0.1:{port}{TRACES_PATH}"
            async with session.post(url, data=body, headers=headers) as response:
                return response.status, await response.text()
    finally:
        await runner.cleanup()


def test_body_claiming_gzip_that_is_not_gets_400(silent_broker: str) -> None:
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}

    status, text = asyncio.run(post_raw(silent_broker, b"\x1f\x8bnot really gzip", headers))

    assert status == 400
    assert "gzip" in text
