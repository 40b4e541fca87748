"""Record a Playwright page's actions as `browser` spans with a viewport frame after each.

    recorder = BrowserRecorder(page, run)
    recorder.goto("http://127.0.0.1:8000/")
    recorder.fill("#email", "ada@example.org")   # the value leaves the process as "[redacted]"
    recorder.click("#submit")

Each action is one step with one `browser` span (tool_name = the action, tool_args = its JSON
arguments) and a PNG screenshot frame linked to the span. Values matching the redaction rules
are masked before anything is handed to the tracer. Optionally a Chrome DevTools screencast
sends JPEG frames continuously between actions (Chromium only).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.sdk.run import Run, Step

logger = logging.getLogger(__name__)

EMAIL_PATTERN = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
DEFAULT_MASK = "[redacted]"
SCREENSHOT_ATTEMPTS = 3


@dataclass(frozen=True)
class RedactionRules:
    """Regular expressions whose matches are replaced by `mask` in every recorded value."""

    patterns: tuple[re.Pattern[str], ...] = (re.compile(EMAIL_PATTERN),)
    mask: str = DEFAULT_MASK

    @classmethod
    def from_patterns(cls, patterns: Iterable[str], mask: str = DEFAULT_MASK, include_email: bool = True) -> "RedactionRules":
        """Build rules from regex texts; e-mail addresses stay masked unless include_email is False."""
        compiled = [re.compile(EMAIL_PATTERN)] if include_email else []
        compiled.extend(re.compile(pattern) for pattern in patterns)
        return cls(tuple(compiled), mask)

    def redact(self, value: Any) -> Any:
        """Return `value` with matches masked: strings directly, dicts and lists recursively."""
        if isinstance(value, str):
            for pattern in self.patterns:
                value = pattern.sub(self.mask, value)
            return value
        if isinstance(value, Mapping):
            return {key: self.redact(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.redact(item) for item in value]
        return value


@dataclass(frozen=True)
class ScreencastOptions:
    """Parameters of CDP `Page.startScreencast`, plus a client-side rate cap.

    Chromium sends a frame only when the page repaints; `max_fps` drops frames arriving faster
    than that (they are still acknowledged, or Chromium would stop sending).
    """

    format: str = "jpeg"
    quality: int = 70
    every_nth_frame: int = 1
    max_width: int | None = None
    max_height: int | None = None
    max_fps: float = 5.0

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"format": self.format, "everyNthFrame": self.every_nth_frame}
        if self.format == "jpeg":
            params["quality"] = self.quality
        if self.max_width:
            params["maxWidth"] = self.max_width
        if self.max_height:
            params["maxHeight"] = self.max_height
        return params


@dataclass
class _Current:
    step: int = 1
    span_id: str | None = None


class BrowserRecorder:
    """Wraps a Playwright `Page` (sync API): every action is a recorded step of `run`."""

    def __init__(
        self,
        page: Any,
        run: Run,
        *,
        redaction: RedactionRules | None = None,
        capture_frames: bool = True,
        parent_span_id: str | None = None,
    ) -> None:
        self.page = page
        self.run = run
        self.redaction = redaction or RedactionRules()
        self.capture_frames = capture_frames
        self.parent_span_id = parent_span_id
        self.frames = 0
        self.screencast_frames = 0
        self._current = _Current()
        self._lock = threading.Lock()
        self._cdp: Any = None
        self._screencast: ScreencastOptions | None = None
        self._last_screencast_s = 0.0

    # Actions

    def goto(self, url: str, **kwargs: Any) -> Any:
        return self._act("goto", url, {"url": url}, lambda: self.page.goto(url, **kwargs))

    navigate = goto

    def click(self, selector: str, **kwargs: Any) -> Any:
        return self._act("click", selector, {"selector": selector}, lambda: self.page.click(selector, **kwargs))

    def dblclick(self, selector: str, **kwargs: Any) -> Any:
        return self._act("dblclick", selector, {"selector": selector}, lambda: self.page.dblclick(selector, **kwargs))

    def hover(self, selector: str, **kwargs: Any) -> Any:
        return self._act("hover", selector, {"selector": selector}, lambda: self.page.hover(selector, **kwargs))

    def fill(self, selector: str, value: str, **kwargs: Any) -> Any:
        return self._act("fill", selector, {"selector": selector, "value": value}, lambda: self.page.fill(selector, value, **kwargs))

    def type(self, selector: str, text: str, **kwargs: Any) -> Any:
        return self._act("type", selector, {"selector": selector, "value": text}, lambda: self.page.type(selector, text, **kwargs))

    def press(self, selector: str, key: str, **kwargs: Any) -> Any:
        return self._act("press", selector, {"selector": selector, "value": key}, lambda: self.page.press(selector, key, **kwargs))

    def check(self, selector: str, **kwargs: Any) -> Any:
        return self._act("check", selector, {"selector": selector}, lambda: self.page.check(selector, **kwargs))

    def uncheck(self, selector: str, **kwargs: Any) -> Any:
        return self._act("uncheck", selector, {"selector": selector}, lambda: self.page.uncheck(selector, **kwargs))

    def select_option(self, selector: str, value: Any, **kwargs: Any) -> Any:
        return self._act(
            "select_option", selector, {"selector": selector, "value": value}, lambda: self.page.select_option(selector, value, **kwargs)
        )

    def wait_for_selector(self, selector: str, **kwargs: Any) -> Any:
        return self._act("wait_for_selector", selector, {"selector": selector}, lambda: self.page.wait_for_selector(selector, **kwargs))

    def action(self, name: str, target: str, arguments: Mapping[str, Any], call: Callable[[], Any], step: Step | None = None) -> Any:
        """Record any other page call `call()` as a browser span named `name target`."""
        return self._act(name, target, dict(arguments), call, step)

    def _act(self, action: str, target: str, arguments: dict[str, Any], call: Callable[[], Any], step: Step | None = None) -> Any:
        step = step or self.run.step()
        redacted = self.redaction.redact(arguments)
        attributes = {f"browser.{key}": value for key, value in redacted.items()}
        with step.span(
            "browser",
            self.redaction.redact(f"{action} {target}"),
            tool_name=action,
            tool_args=json.dumps(redacted, ensure_ascii=False, default=str),
            attributes=attributes,
        ) as span:
            if self.parent_span_id:
                span.parent_span_id = self.parent_span_id
            with self._lock:
                self._current = _Current(step.number, span.span_id)
            try:
                result = call()
            finally:
                span.set_attribute("browser.page_url", self.redaction.redact(self._page_url()))
                if self.capture_frames:
                    self._capture_viewport(step)
        return result

    def _page_url(self) -> str:
        try:
            return str(self.page.url)
        except Exception:  # a closed page has no URL
            return ""

    def _capture_viewport(self, step: Step) -> None:
        from playwright.sync_api import Error as PlaywrightError

        for attempt in range(1, SCREENSHOT_ATTEMPTS + 1):
            try:
                # Chromium cannot capture in the middle of a navigation that a click started.
                self.page.wait_for_load_state("load")
                data = self.page.screenshot(type="png")
            except PlaywrightError as error:
                logger.warning("viewport capture failed run_id=%s step=%d attempt=%d error=%s", self.run.run_id, step.number, attempt, error)
                time.sleep(0.1 * attempt)
                continue
            size = self.page.viewport_size or {}
            step.frame(data, content_type="image/png", kind="viewport", width=size.get("width"), height=size.get("height"))
            self.frames += 1
            return
        logger.error("viewport frame skipped run_id=%s step=%d after %d attempts", self.run.run_id, step.number, SCREENSHOT_ATTEMPTS)

    # Screencast

    def start_screencast(self, options: ScreencastOptions | None = None) -> None:
        """Start a CDP screencast: each frame becomes a JPEG (or PNG) frame of the current step."""
        if self._cdp is not None:
            return
        # NOTE: Playwright's sync API dispatches CDP events on the calling thread only while that
        # thread is inside a Playwright call, so no frames arrive while the agent is thinking.
        self._screencast = options or ScreencastOptions()
        self._cdp = self.page.context.new_cdp_session(self.page)
        self._cdp.on("Page.screencastFrame", self._on_screencast_frame)
        self._cdp.send("Page.startScreencast", self._screencast.params())

    def stop_screencast(self) -> None:
        if self._cdp is None:
            return
        try:
            self._cdp.send("Page.stopScreencast")
            self._cdp.detach()
        except Exception as error:  # the page may already be closed
            logger.info("screencast stop failed run_id=%s error=%s", self.run.run_id, error)
        self._cdp = None

    def _on_screencast_frame(self, event: Mapping[str, Any]) -> None:
        try:
            # Chromium holds the next frame until this one is acknowledged.
            self._cdp.send("Page.screencastFrameAck", {"sessionId": event["sessionId"]})
        except Exception as error:
            logger.debug("screencast ack failed error=%s", error)
        options = self._screencast or ScreencastOptions()
        now = time.monotonic()
        if options.max_fps > 0 and now - self._last_screencast_s < 1.0 / options.max_fps:
            return
        self._last_screencast_s = now
        metadata = event.get("metadata") or {}
        timestamp = metadata.get("timestamp")
        capture_ns = int(timestamp * 1e9) if isinstance(timestamp, (int, float)) else time.time_ns()
        with self._lock:
            current = self._current
        width = metadata.get("deviceWidth")
        height = metadata.get("deviceHeight")
        self.run.record_frame(
            base64.b64decode(event["data"]),
            step=current.step,
            content_type="image/jpeg" if options.format == "jpeg" else "image/png",
            kind="viewport",
            capture_ns=capture_ns,
            span_id=current.span_id,
            width=int(width) if width else None,
            height=int(height) if height else None,
        )
        self.screencast_frames += 1
