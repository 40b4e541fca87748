"""The replay service against the live stack: verify, WebSocket replay, tokens, bad messages."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
import websockets

from pipeline.replay.process import ReplayServerProcess
from pipeline.replay.protocol import decode_frame_message
from pipeline.replay.tokens import TokenSigner
from pipeline.replay.verify import verify_run
from tests.conftest import IsolatedPipeline, free_port
from tests.integration.helpers import count_rows, start_worker, wait_for

SECRET = "integration-test-secret-" + uuid.uuid4().hex


@dataclass
class StoredRun:
    run_id: str
    frames: dict[int, bytes]  # step -> bytes


@dataclass
class Service:
    server: ReplayServerProcess
    signer: TokenSigner
    runs: list[StoredRun]
    dsn: str


@pytest.fixture(scope="module")
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    isolated: IsolatedPipeline = request.getfixturevalue("isolated_module")
    from pipeline.sdk import Tracer

    settings = isolated.settings
    runs = []
    tracer = Tracer(settings)
    for _ in range(2):
        run_id = f"replay-{uuid.uuid4().hex[:10]}"
        frames = {}
        with tracer.run("replay-test-agent", run_id=run_id) as run:
            for _ in range(4):
                with run.step() as step:
                    with step.span("browser", "click #next", tool_name="click"):
                        data = os.urandom(50_000)
                        step.frame(data, content_type="image/png")
                        frames[step.number] = data
        runs.append(StoredRun(run_id, frames))
    assert tracer.close().frames_dropped == 0

    dsn = settings.database_dsn.reveal()
    workers = [start_worker(isolated, "spans", "replay-spans"), start_worker(isolated, "frames", "replay-frames")]
    try:
        for run in runs:
            wait_for(lambda: count_rows(dsn, "SELECT count(*) FROM frames WHERE run_id = %s", (run.run_id,)) == 4,
                     60, f"frames of {run.run_id}")
            # Four browser spans and the run's root span.
            wait_for(lambda: count_rows(dsn, "SELECT count(*) FROM spans WHERE run_id = %s", (run.run_id,)) == 5,
                     60, f"spans of {run.run_id}")
    finally:
        for worker in workers:
            worker.stop()

    server = ReplayServerProcess(free_port(), isolated.state_dir / "logs" / "replay.log",
                                 env={**isolated.env, "SPANLINE_REPLAY_SECRET": SECRET})
    server.start()
    try:
        yield Service(server, TokenSigner(SECRET.encode()), runs, dsn)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def isolated_module(live_settings, tmp_path_factory):  # type: ignore[no-untyped-def]
    """The `isolated` fixture at module scope, so workers run once for all tests here."""
    from tests import conftest

    generator = conftest.isolated.__wrapped__(live_settings, tmp_path_factory.mktemp("replay"))
    yield next(generator)
    next(generator, None)


def ws_url(service: Service, run_id: str, token_run: str | None = None) -> str:
    token = service.signer.sign(token_run or run_id)
    return f"ws://127.0.0.1:{service.server.port}/ws/runs/{run_id}?token={token}"


async def receive_until(socket, predicate, timeout_s: float = 10.0):  # type: ignore[no-untyped-def]
    """Return the first message (JSON-decoded, or (header, bytes) for frames) matching predicate."""
    async def loop():  # type: ignore[no-untyped-def]
        while True:
            raw = await socket.recv()
            message = decode_frame_message(raw) if isinstance(raw, bytes) else json.loads(raw)
            if predicate(message):
                return message
    return await asyncio.wait_for(loop(), timeout_s)


def is_frame(message) -> bool:  # type: ignore[no-untyped-def]
    return isinstance(message, tuple)


def test_verify_reports_every_frame_identical(service: Service, isolated_module: IsolatedPipeline) -> None:
    report = verify_run(isolated_module.settings, service.runs[0].run_id)
    assert report.expected == 4
    assert report.present == 4
    assert report.identical == 4
    assert report.ok


def test_verify_reports_missing_object(service: Service, isolated_module: IsolatedPipeline) -> None:
    run_id = f"replay-missing-{uuid.uuid4().hex[:8]}"
    fake_hash = hashlib.sha256(os.urandom(32)).hexdigest()
    with psycopg.connect(service.dsn, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO frames (capture_time, run_id, step, seq, kind, content_type, sha256, size_bytes, object_key)"
            " VALUES (now(), %s, 1, 0, 'viewport', 'image/png', %s, 1, %s)",
            (run_id, fake_hash, f"frames/sha256/{fake_hash[:2]}/{fake_hash}"),
        )
    report = verify_run(isolated_module.settings, run_id)
    assert report.expected == 1
    assert report.present == 0
    assert len(report.missing) == 1
    assert not report.ok


def test_seek_to_step_sends_exact_bytes(service: Service) -> None:
    run = service.runs[0]

    async def scenario() -> tuple:
        async with websockets.connect(ws_url(service, run.run_id), max_size=None) as socket:
            await socket.send(json.dumps({"type": "open", "run_id": run.run_id}))
            await receive_until(socket, lambda m: isinstance(m, dict) and m["type"] == "opened")
            await socket.send(json.dumps({"type": "seek", "step": 3, "id": "s"}))
            seeked = await receive_until(socket, lambda m: isinstance(m, dict) and m["type"] == "seeked")
            frame = await receive_until(socket, lambda m: is_frame(m) and m[0].generation == seeked["generation"])
            return seeked, frame

    seeked, (header, data) = asyncio.run(scenario())
    assert seeked["step"] == 3
    assert header.step == 3
    assert data == run.frames[3]
    assert header.sha256_hex == hashlib.sha256(run.frames[3]).hexdigest()


def test_token_for_other_run_rejected_at_handshake(service: Service) -> None:
    first, second = service.runs

    async def scenario() -> None:
        async with websockets.connect(ws_url(service, second.run_id, token_run=first.run_id)):
            pass

    with pytest.raises(websockets.InvalidStatus) as caught:
        asyncio.run(scenario())
    assert caught.value.response.status_code == 403


def test_open_of_other_run_closes_socket(service: Service) -> None:
    first, second = service.runs

    async def scenario() -> tuple[dict, int | None]:
        async with websockets.connect(ws_url(service, first.run_id)) as socket:
            await socket.send(json.dumps({"type": "open", "run_id": second.run_id}))
            error = await receive_until(socket, lambda m: isinstance(m, dict) and m["type"] == "error")
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(socket.recv(), 5)
            return error, socket.close_code

    error, close_code = asyncio.run(scenario())
    assert error["code"] == "forbidden"
    assert close_code == 4403


def test_api_rejects_token_of_other_run(service: Service) -> None:
    import urllib.error
    import urllib.request

    first, second = service.runs
    token = service.signer.sign(first.run_id)
    url = f"{service.server.base_url}/api/runs/{second.run_id}/summary?token={token}"
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(url, timeout=10)
    assert caught.value.code == 403


def test_malformed_controls_get_errors_and_stay_open(service: Service) -> None:
    run = service.runs[0]

    async def scenario() -> list[dict]:
        async with websockets.connect(ws_url(service, run.run_id)) as socket:
            errors = []
            for bad in ["{", '{"type": "seek"}', '{"type": "speed", "value": 99}', '{"type": "play"}']:
                await socket.send(bad)
                errors.append(await receive_until(socket, lambda m: isinstance(m, dict) and m["type"] == "error"))
            await socket.send(b"\x00binary")
            errors.append(await receive_until(socket, lambda m: isinstance(m, dict) and m["type"] == "error"))
            await socket.send(json.dumps({"type": "ping", "id": 1}))
            await receive_until(socket, lambda m: isinstance(m, dict) and m["type"] == "pong")
            return errors

    errors = asyncio.run(scenario())
    assert [error["code"] for error in errors] == [
        "invalid_json", "invalid_field", "out_of_range", "not_open", "binary_not_accepted"
    ]
    assert all(error["message"] for error in errors)


def test_repeated_abuse_closes_with_reason(service: Service) -> None:
    run = service.runs[0]

    async def scenario() -> int | None:
        async with websockets.connect(ws_url(service, run.run_id)) as socket:
            for _ in range(25):
                try:
                    await socket.send("nope")
                except websockets.ConnectionClosed:
                    break
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(socket.recv(), 5)
            return socket.close_code

    assert asyncio.run(scenario()) == 4400
