"""Benchmark: time from a seek to the first frame on a 1,000-frame run (goal: 150 ms or less).

Stores a synthetic run straight into S3 and the `frames` table (the ingest path is not what is
measured), starts `spanline replay serve` on a free port, then times seeks to random frames over
one WebSocket. Needs the live local stack.

    .venv/bin/python -m load.bench_replay [--frames 1000] [--seeks 100] [--frame-bytes 60000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import websockets

from pipeline.config import Settings
from pipeline.replay.process import ReplayServerProcess
from pipeline.replay.protocol import decode_frame_message
from pipeline.replay.tokens import TokenSigner
from pipeline.stores.objects import FrameObjectStore, sha256_hex


def store_run(settings: Settings, frames: int, frame_bytes: int) -> str:
    """Put `frames` random frames in S3 and their rows in `frames`; return the run id."""
    run_id = f"bench-replay-{uuid.uuid4().hex[:8]}"
    store = FrameObjectStore(settings)
    start_ns = time.time_ns()
    rows = []
    for seq in range(frames):
        data = os.urandom(frame_bytes)
        digest = sha256_hex(data)
        key, _ = store.put_frame(data, digest, "image/jpeg")
        capture_ns = start_ns + seq * 200_000_000  # 5 frames per second
        rows.append((capture_ns / 1e9, run_id, seq // 5 + 1, seq, digest, len(data), key))
    with psycopg.connect(settings.database_dsn.reveal(), autocommit=True) as connection:
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO frames (capture_time, run_id, step, seq, kind, content_type, sha256, size_bytes, object_key)"
                " VALUES (to_timestamp(%s), %s, %s, %s, 'viewport', 'image/jpeg', %s, %s, %s)",
                rows,
            )
    return run_id


async def time_seeks(url: str, run_id: str, frames: int, seeks: int) -> list[float]:
    """Return the milliseconds from each seek message to the first frame it produced."""
    rng = random.Random(7)
    timings = []
    async with websockets.connect(url, max_size=None) as socket_:
        await socket_.send(json.dumps({"type": "open", "run_id": run_id}))
        while True:
            raw = await socket_.recv()
            if isinstance(raw, str) and json.loads(raw)["type"] == "state":
                break
        generation = 0
        for _ in range(seeks):
            seq = rng.randrange(frames)
            started = time.perf_counter()
            await socket_.send(json.dumps({"type": "seek", "seq": seq}))
            generation += 1
            while True:
                raw = await socket_.recv()
                if isinstance(raw, bytes):
                    header, _ = decode_frame_message(raw)
                    if header.generation == generation:
                        timings.append((time.perf_counter() - started) * 1000)
                        assert header.seq == seq, f"seek to seq {seq} showed seq {header.seq}"
                        break
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000, help="frames in the run (default 1000)")
    parser.add_argument("--seeks", type=int, default=100, help="seeks to time (default 100)")
    parser.add_argument("--frame-bytes", type=int, default=60_000, help="size of each frame in bytes (default 60000)")
    args = parser.parse_args()

    settings = Settings.from_env()
    print(f"storing {args.frames} frames of {args.frame_bytes} bytes ...", flush=True)
    run_id = store_run(settings, args.frames, args.frame_bytes)
    secret = "bench-" + uuid.uuid4().hex
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ReplayServerProcess(port, Path(tempfile.gettempdir()) / "spanline-bench-replay.log",
                                 env={"SPANLINE_REPLAY_SECRET": secret})
    server.start()
    try:
        token = TokenSigner(secret.encode()).sign(run_id)
        url = f"ws://127.0.0.1:{port}/ws/runs/{run_id}?token={token}"
        cold = asyncio.run(time_seeks(url, run_id, args.frames, args.seeks))
        warm = asyncio.run(time_seeks(url, run_id, args.frames, args.seeks))
    finally:
        server.stop()
    for label, timings in (("first pass (mostly cache misses)", cold), ("second pass (cached)", warm)):
        ordered = sorted(timings)
        p95 = ordered[max(0, int(0.95 * len(ordered)) - 1)]
        print(f"{label}: seeks={len(timings)} median={statistics.median(timings):.1f} ms "
              f"p95={p95:.1f} ms max={ordered[-1]:.1f} ms")
    print(f"run_id={run_id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
