"""The replay service: run viewer pages, a JSON API and the replay WebSocket (Starlette, ASGI).

Every run endpoint needs a token signed for exactly that run (query `token` or an
`Authorization: Bearer` header). The runs list needs a list token (run "*"); the list hands out
per-run links. Object keys reach the server only from the run's own frame rows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from pipeline.config import Settings
from pipeline.replay import queries
from pipeline.replay.frames import BytesLRU, FrameFetcher
from pipeline.replay.metrics import ReplayMetrics
from pipeline.replay.protocol import (
    CLOSE_FORBIDDEN,
    CLOSE_INTERNAL,
    CLOSE_NOT_FOUND,
    CLOSE_PROTOCOL_ABUSE,
    ProtocolError,
    error_message,
    parse_control,
)
from pipeline.replay.sender import BoundedSender, SenderClosed
from pipeline.replay.session import ReplaySession, SessionConfig
from pipeline.replay.tokens import DEFAULT_TTL_S, TokenClaims, TokenError, TokenSigner
from pipeline.stores.objects import FrameObjectStore

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
# After this many rejected control messages a connection is closed as abusive.
MAX_CONTROL_ERRORS = 20
MAX_RUNS_LISTED = 500

_SECURITY_HEADERS = {
    # Everything the viewer loads comes from this server; frames are shown from blob: URLs.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; frame-src 'self' blob:; "
        "connect-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'"
    ),
    # Links carry their token in the query string; it must not leak through Referer.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


@dataclass
class ReplayConfig:
    """Bounds of the service; the defaults suit one machine with a few dozen viewers."""

    cache_bytes: int = 256 * 1024 * 1024
    cache_entries: int = 4096
    s3_parallel_reads: int = 8
    session: SessionConfig = field(default_factory=SessionConfig)


class ReplayService:
    """State shared by all requests: settings, signer, frame cache and metrics."""

    def __init__(self, settings: Settings, signer: TokenSigner, config: ReplayConfig | None = None) -> None:
        self.settings = settings
        self.signer = signer
        self.config = config or ReplayConfig()
        self.metrics = ReplayMetrics()
        self.store = FrameObjectStore(settings)
        self.cache = BytesLRU(self.config.cache_bytes, self.config.cache_entries)
        self._fetcher: FrameFetcher | None = None

    @property
    def dsn(self) -> str:
        return self.settings.database_dsn.reveal()

    def fetcher(self) -> FrameFetcher:
        # Created on first use so its semaphore belongs to the server's event loop.
        if self._fetcher is None:
            self._fetcher = FrameFetcher(self._read_object, self.cache, self.config.s3_parallel_reads)
        return self._fetcher

    def _read_object(self, key: str) -> bytes:
        self.metrics.s3_reads.inc()
        return self.store.get_frame(key)


def _token_from(request: Request | WebSocket) -> str | None:
    token = request.query_params.get("token")
    if token:
        return token
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def _check_token(service: ReplayService, request: Request | WebSocket, run_id: str) -> TokenClaims | Response:
    token = _token_from(request)
    if not token:
        return _json_error(401, "token_missing", "this page needs a signed link; create one with `spanline replay token RUN_ID`")
    try:
        claims = service.signer.verify(token)
    except TokenError as error:
        return _json_error(401, "token_invalid", str(error))
    if claims.run_id != run_id:
        return _json_error(403, "forbidden", f"this link does not open {'the runs list' if run_id == '*' else 'run ' + repr(run_id)}")
    return claims


def _json_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=_SECURITY_HEADERS)


def _json(data: Any) -> JSONResponse:
    return JSONResponse(data, headers=_SECURITY_HEADERS)


def build_app(service: ReplayService) -> Starlette:
    """Create the ASGI app serving the viewer, the API and the WebSocket of `service`."""

    async def runs_page(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "runs.html", headers=_SECURITY_HEADERS)

    async def run_page(request: Request) -> Response:
        checked = _check_token(service, request, request.path_params["run_id"])
        if isinstance(checked, Response):
            return checked
        return FileResponse(STATIC_DIR / "run.html", headers=_SECURITY_HEADERS)

    async def api_runs(request: Request) -> Response:
        checked = _check_token(service, request, "*")
        if isinstance(checked, Response):
            return checked
        try:
            limit = min(max(int(request.query_params.get("limit", "100")), 1), MAX_RUNS_LISTED)
        except ValueError:
            return _json_error(400, "invalid_limit", f"limit {request.query_params.get('limit')!r} is not a whole number")
        async with await queries.connect(service.dsn) as connection:
            runs = await queries.fetch_runs(
                connection,
                agent=request.query_params.get("agent") or None,
                status=request.query_params.get("status") or None,
                search=request.query_params.get("q") or None,
                limit=limit,
            )
        # Per-run links never outlive the list token that produced them.
        ttl = max(1, min(DEFAULT_TTL_S, checked.expires_at - int(time.time())))
        for run in runs:
            run["token"] = service.signer.sign(run["run_id"], ttl_s=ttl)
        return _json({"runs": runs})

    async def api_summary(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        checked = _check_token(service, request, run_id)
        if isinstance(checked, Response):
            return checked
        async with await queries.connect(service.dsn) as connection:
            summary = await queries.fetch_summary(connection, run_id)
        if summary is None:
            return _json_error(404, "not_found", f"run {run_id!r} has no spans")
        return _json(summary)

    async def api_spans(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        checked = _check_token(service, request, run_id)
        if isinstance(checked, Response):
            return checked
        async with await queries.connect(service.dsn) as connection:
            rows, _ = await queries.fetch_spans(connection, run_id)
        return _json({"spans": [queries.span_json(row) for row in rows]})

    async def api_frames(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        checked = _check_token(service, request, run_id)
        if isinstance(checked, Response):
            return checked
        async with await queries.connect(service.dsn) as connection:
            refs, _ = await queries.fetch_frames(connection, run_id)
        return _json({"frames": [ref.public() for ref in refs]})

    async def api_frame_bytes(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        checked = _check_token(service, request, run_id)
        if isinstance(checked, Response):
            return checked
        seq = request.path_params["seq"]
        async with await queries.connect(service.dsn) as connection:
            refs, _ = await queries.fetch_frames(connection, run_id)
        ref = next((item for item in refs if item.seq == seq), None)
        if ref is None:
            return _json_error(404, "not_found", f"run {run_id!r} has no frame with seq {seq}")
        data = await service.fetcher().get(ref)
        headers = {**_SECURITY_HEADERS, "X-Frame-Sha256": ref.sha256, "Content-Security-Policy": "sandbox"}
        return Response(data, media_type=ref.content_type, headers=headers)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        try:
            async with await queries.connect(service.dsn) as connection:
                await connection.execute("SELECT 1")
            await asyncio.to_thread(service.store.check_bucket)
        except Exception as error:  # any dependency failure means not ready
            logger.warning("replay not ready: error=%s", error)
            return PlainTextResponse(f"not ready: {error}\n", status_code=503)
        return PlainTextResponse("ready\n")

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def replay_socket(websocket: WebSocket) -> None:
        await _serve_socket(service, websocket)

    routes = [
        Route("/", runs_page),
        Route("/runs/{run_id}", run_page),
        Route("/api/runs", api_runs),
        Route("/api/runs/{run_id}/summary", api_summary),
        Route("/api/runs/{run_id}/spans", api_spans),
        Route("/api/runs/{run_id}/frames", api_frames),
        Route("/api/runs/{run_id}/frames/{seq:int}", api_frame_bytes),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        WebSocketRoute("/ws/runs/{run_id}", replay_socket),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(routes=routes)


async def _serve_socket(service: ReplayService, websocket: WebSocket) -> None:
    run_id = websocket.path_params["run_id"]
    checked = _check_token(service, websocket, run_id)
    if isinstance(checked, Response):
        # Closing before accept makes the server answer the handshake with HTTP 403.
        logger.info("replay socket rejected run_id=%s reason=%s", run_id, checked.status_code)
        await websocket.close(code=CLOSE_FORBIDDEN)
        return
    await websocket.accept()
    metrics = service.metrics
    metrics.sessions.inc()

    def count_sent(size: int, binary: bool) -> None:
        metrics.bytes_sent.inc(size)
        if binary:
            metrics.frames_sent.inc()

    sender = BoundedSender(websocket.send_text, websocket.send_bytes, service.config.session.max_queued_bytes, count_sent)
    sender.start()
    connection: psycopg.AsyncConnection[Any] | None = None
    session: ReplaySession | None = None
    close_code, close_reason = 1000, ""
    try:
        connection = await queries.connect(service.dsn)
        session = ReplaySession(run_id, connection, service.fetcher(), sender, service.config.session)
        errors = 0
        logger.info("replay session started run_id=%s", run_id)
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            try:
                if text is None:
                    raise ProtocolError("binary_not_accepted", "control messages are JSON text; binary messages are not accepted")
                await session.handle(parse_control(text))
            except ProtocolError as error:
                errors += 1
                metrics.control_errors.labels(error.code).inc()
                await sender.send(_dumps(error_message(error.code, str(error), error.request_id)))
                if error.code == "forbidden":
                    close_code, close_reason = CLOSE_FORBIDDEN, "run not allowed by this link"
                    break
                if error.code == "not_found" and not session.opened:
                    close_code, close_reason = CLOSE_NOT_FOUND, "run not found"
                    break
                if errors >= MAX_CONTROL_ERRORS:
                    close_code, close_reason = CLOSE_PROTOCOL_ABUSE, f"{errors} invalid control messages"
                    break
    except (WebSocketDisconnect, SenderClosed):
        pass
    except Exception:
        logger.exception("replay session failed run_id=%s", run_id)
        close_code, close_reason = CLOSE_INTERNAL, "internal error; see the server log"
    finally:
        if session is not None:
            await session.close()
        # Lets queued error messages reach the client before the close frame.
        await _drain(sender)
        await sender.close()
        if connection is not None:
            await connection.close()
        metrics.sessions.dec()
        if websocket.client_state == WebSocketState.CONNECTED:
            try:
                await websocket.close(code=close_code, reason=close_reason)
            except RuntimeError:
                pass
        logger.info("replay session ended run_id=%s code=%d", run_id, close_code)


async def _drain(sender: BoundedSender, timeout_s: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while sender.queued_bytes and sender.error is None and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))
