"""Frames through the real broker and worker into S3 and TimescaleDB, byte for byte."""

from __future__ import annotations

import hashlib
import os
import uuid

import psycopg

from pipeline.stores.objects import FrameObjectStore
from tests.conftest import IsolatedPipeline
from tests.integration.helpers import count_rows, start_worker, wait_for


def test_frame_read_back_is_byte_identical(isolated: IsolatedPipeline) -> None:
    from pipeline.sdk import Tracer

    settings = isolated.settings
    dsn = settings.database_dsn.reveal()
    run_id = f"frames-{uuid.uuid4().hex[:8]}"
    # Random bytes cannot be recompressed or normalised anywhere on the way without detection.
    first = os.urandom(300_000)
    second = os.urandom(2_000_000)

    tracer = Tracer(settings)
    with tracer.run(agent="test-agent", run_id=run_id) as run:
        run.record_frame(first, step=1, content_type="image/png")
        run.record_frame(second, step=2, content_type="image/png")
        run.record_frame(first, step=3, content_type="image/png")
    tracer.close()

    worker = start_worker(isolated, "frames", "frame-worker")
    try:
        wait_for(
            lambda: count_rows(dsn, "SELECT count(*) FROM frames WHERE run_id = %s", (run_id,))
            == 3,
            timeout_s=60, what="three frame rows",
        )
    finally:
        worker.stop()

    with psycopg.connect(dsn) as connection:
        rows = connection.execute(
            "SELECT seq, step, sha256, size_bytes, object_key FROM frames"
            " WHERE run_id = %s ORDER BY seq",
            (run_id,),
        ).fetchall()
    store = FrameObjectStore(settings)
    originals = [first, second, first]
    assert [row[0] for row in rows] == [0, 1, 2]
    for (seq, step, sha256, size_bytes, object_key), original in zip(rows, originals):
        stored = store.get_frame(object_key)
        assert stored == original, f"frame seq={seq} differs from what was captured"
        assert sha256 == hashlib.sha256(original).hexdigest()
        assert size_bytes == len(original)
    # Identical content is stored once: both rows of `first` share one object.
    assert rows[0][4] == rows[2][4]
