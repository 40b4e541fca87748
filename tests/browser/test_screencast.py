"""The CDP screencast of BrowserRecorder against real headless Chromium, with a recording producer."""

from __future__ import annotations

import time

import pytest

from pipeline.config import Settings
from pipeline.demo.browser_run import CHROMIUM_ARGS, CHROMIUM_PATH
from pipeline.sdk import Tracer
from pipeline.sdk.browser import BrowserRecorder, ScreencastOptions
from pipeline.wire import decode_frame, decode_span_batch
from tests.recording_producer import RecordingProducer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM_PATH.exists(), reason=f"Chromium not installed at {CHROMIUM_PATH}"),
]

JPEG_START = b"\xff\xd8\xff"
SETTINGS = Settings(kafka_bootstrap="127.0.0.1:1")

# A counter that changes every 30 ms, so Chromium repaints and sends screencast frames.
ANIMATED_PAGE = """<!doctype html>
<html><body style="font: 48px sans-serif">
<div id="counter">0</div>
<script>
  let count = 0;
  setInterval(() => { document.getElementById("counter").textContent = String(++count); }, 30);
</script>
</body></html>"""


def record_screencast(max_fps: float, watch_s: float) -> tuple[list, str, int, BrowserRecorder]:
    """Watch the animated page for `watch_s` seconds in one recorded action.

    Returns the frames, the action's span id and step number, and the recorder.
    """
    from playwright.sync_api import sync_playwright

    producer = RecordingProducer()
    tracer = Tracer(SETTINGS, producer=producer, linger_ms=10)
    with tracer.run("screencast-test", root_span=False) as run, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM_PATH), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 640, "height": 360})
            page.set_content(ANIMATED_PAGE)
            recorder = BrowserRecorder(page, run, capture_frames=False)
            recorder.start_screencast(ScreencastOptions(max_fps=max_fps))
            step = run.step()
            recorder.action("watch", "#counter", {}, lambda: page.wait_for_timeout(watch_s * 1000), step=step)
            recorder.stop_screencast()
        finally:
            browser.close()
    stats = tracer.close(timeout_s=5)
    assert stats.frames_dropped == 0, stats.frames_dropped_by_reason

    frames = [decode_frame(value) for topic, _key, value in producer.messages if topic == SETTINGS.frames_topic]
    spans = [value for topic, _key, value in producer.messages if topic == SETTINGS.spans_topic]
    assert spans, "the watch action recorded no span"
    (span_id,) = decode_span_batch(spans[0]).columns["span_id"]
    return frames, span_id, step.number, recorder


def test_screencast_sends_jpeg_frames_of_the_action() -> None:
    frames, span_id, step, recorder = record_screencast(max_fps=10, watch_s=1.5)

    assert len(frames) >= 3, f"only {len(frames)} screencast frames in 1.5 s of animation"
    assert recorder.screencast_frames == len(frames)
    for frame in frames:
        assert frame.data.startswith(JPEG_START)
        assert frame.content_type == "image/jpeg"
        assert frame.kind == "viewport"
        assert frame.step == step
        assert frame.span_id == span_id
        assert (frame.width, frame.height) == (640, 360)
    assert [frame.seq for frame in frames] == list(range(len(frames)))


def test_screencast_frame_times_are_ordered_and_recent() -> None:
    started_ns = time.time_ns()
    frames, _span_id, _step, _recorder = record_screencast(max_fps=10, watch_s=1.0)

    captures = [frame.capture_ns for frame in frames]
    assert captures == sorted(captures)
    assert all(started_ns - 5_000_000_000 <= capture <= time.time_ns() for capture in captures)


def test_screencast_rate_cap_limits_frames() -> None:
    frames, _span_id, _step, _recorder = record_screencast(max_fps=2, watch_s=2.0)

    # At 2 frames per second over 2 s at most 5 frames pass: one at the start, then one per 0.5 s.
    assert 1 <= len(frames) <= 5
