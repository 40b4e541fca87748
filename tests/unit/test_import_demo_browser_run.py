"""The demo's browser run against real headless Chromium, with a producer that records messages."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest

from pipeline.demo.browser_run import CHROMIUM_PATH, BrowserUnavailableError, check_chromium, record_browser_run, serve_site
from pipeline.sdk import Tracer
from tests.recording_producer import RecordingProducer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

needs_chromium = pytest.mark.skipif(not CHROMIUM_PATH.exists(), reason=f"Chromium not installed at {CHROMIUM_PATH}")


def test_site_serves_booking_pages() -> None:
    with serve_site() as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        for page in ("index.html", "book.html", "confirm.html", "style.css"):
            with urllib.request.urlopen(f"{base_url}/{page}", timeout=5) as response:
                assert response.status == 200


def test_missing_chromium_names_the_fix(tmp_path) -> None:
    with pytest.raises(BrowserUnavailableError, match="spanline stack up"):
        check_chromium(tmp_path / "no-chromium")


@dataclass
class RecordedRun:
    result: Any
    stats: Any
    rows: list[dict[str, Any]]
    frames: list[Any]


@pytest.fixture(scope="module")
def recorded() -> RecordedRun:
    if not CHROMIUM_PATH.exists():
        pytest.skip(f"Chromium not installed at {CHROMIUM_PATH}")
    from pipeline.wire.frames import decode_frame
    from pipeline.wire.spans import decode_span_batch

    producer = RecordingProducer()
    tracer = Tracer(producer=producer)
    result = record_browser_run(tracer)
    stats = tracer.close(timeout_s=10)

    rows: list[dict[str, Any]] = []
    frames: list[Any] = []
    for topic, _, value in producer.messages:
        if topic == tracer.settings.frames_topic:
            frames.append(decode_frame(value))
        elif topic == tracer.settings.spans_topic:
            batch = decode_span_batch(value)
            for index in range(batch.size):
                rows.append({column: values[index] for column, values in batch.columns.items()})
    return RecordedRun(result, stats, rows, frames)


@pytest.mark.browser
@needs_chromium
def test_frames_match_their_sha256(recorded: RecordedRun) -> None:
    result = recorded.result
    assert len(recorded.frames) == result.frames
    assert recorded.stats.frames_delivered == result.frames
    for frame in recorded.frames:
        assert frame.data.startswith(PNG_SIGNATURE)
        assert frame.sha256 == hashlib.sha256(frame.data).hexdigest()
        assert (frame.width, frame.height) == (1280, 720)
        assert frame.content_type == "image/png"
        assert frame.run_id == result.run_id


@pytest.mark.browser
@needs_chromium
def test_browser_run_span_mix(recorded: RecordedRun) -> None:
    result = recorded.result
    assert len(recorded.rows) == result.spans
    assert recorded.stats.spans_delivered == result.spans
    kinds = [row["kind"] for row in recorded.rows]
    assert kinds.count("agent") == 1
    assert kinds.count("plan") == 1
    assert kinds.count("llm") == 2
    assert kinds.count("browser") == result.frames


@pytest.mark.browser
@needs_chromium
def test_browser_run_ends_with_a_succeeded_root_span(recorded: RecordedRun) -> None:
    (root,) = [row for row in recorded.rows if not row["parent_span_id"]]
    assert root["kind"] == "agent"
    assert root["status"] == "ok"
    children = [row for row in recorded.rows if row is not root]
    assert {row["parent_span_id"] for row in children} <= {row["span_id"] for row in recorded.rows}


@pytest.mark.browser
@needs_chromium
def test_browser_run_has_failed_step(recorded: RecordedRun) -> None:
    failed = [row for row in recorded.rows if row["status"] == "error"]
    assert len(failed) == 1
    assert failed[0]["kind"] == "browser"
    assert "Timeout" in failed[0]["error_message"]


@pytest.mark.browser
@needs_chromium
def test_simulated_llm_spans_are_marked(recorded: RecordedRun) -> None:
    for row in recorded.rows:
        if row["kind"] == "llm":
            assert json.loads(row["attributes"])["spanline.simulated"] is True
            assert row["model"] == "gpt-4o-mini"
            assert row["input_tokens"] > 0


@pytest.mark.browser
@needs_chromium
def test_frames_point_at_browser_spans(recorded: RecordedRun) -> None:
    browser_spans = {row["span_id"]: row["step"] for row in recorded.rows if row["kind"] == "browser"}
    for frame in recorded.frames:
        assert browser_spans[frame.span_id] == frame.step
    assert [frame.seq for frame in recorded.frames] == list(range(len(recorded.frames)))
