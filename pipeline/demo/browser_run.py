"""A real browser-agent run recorded through the SDK: headless Chromium books a table on a local site.

The site (`pipeline/demo/site/`) is served on 127.0.0.1 on a free port. Every browser action is a
`browser` span followed by a viewport screenshot frame. The run also has one `plan` span around
everything and two `llm` spans whose usage is made up (no model is called), marked with the
attribute `spanline.simulated=true`. One step clicks a button that does not exist, so the run
contains a failed step, as the failed runs the product is for do.
"""

from __future__ import annotations

import functools
import http.server
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from pipeline.pricing.usage import Usage, normalise_usage

logger = logging.getLogger(__name__)

CHROMIUM_PATH = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SITE_DIR = Path(__file__).resolve().parent / "site"
VIEWPORT = {"width": 1280, "height": 720}
ACTION_TIMEOUT_MS = 10_000
# The failing step waits this long for a selector that never appears.
MISSING_SELECTOR_TIMEOUT_MS = 1_500
SCREENSHOT_ATTEMPTS = 3
SIMULATED_PROVIDER = "openai"
SIMULATED_MODEL = "gpt-4o-mini"


class BrowserUnavailableError(RuntimeError):
    """Chromium or Playwright is missing, so the browser run cannot start."""


class BrowserRunResult(NamedTuple):
    """The recorded run's id and how many spans and frames were handed to the SDK."""

    run_id: str
    spans: int
    frames: int


@dataclass
class _Recorder:
    """Numbers steps and counts what one run records."""

    run: Any
    plan_span_id: str
    step: int = 0
    spans: int = 0
    frames: int = 0

    def next_step(self) -> int:
        self.step += 1
        return self.step


def check_chromium(path: Path = CHROMIUM_PATH) -> None:
    """Raise BrowserUnavailableError unless Chromium and Playwright can be used."""
    if not path.exists():
        raise BrowserUnavailableError(
            f"Chromium not found at {path}; run `spanline stack up` (it installs it) or "
            "`apt-get install -y chromium`"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as error:
        raise BrowserUnavailableError(
            f"Playwright is not importable ({error}); install the project with `pip install -e .`"
        ) from None


@contextmanager
def serve_site(directory: Path = SITE_DIR) -> Iterator[str]:
    """Serve `directory` over HTTP on 127.0.0.1 on a free port and yield its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="demo-site", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    logger.info("demo site serving url=http://%s:%d/ directory=%s", host, port, directory)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("demo site request " + format, *args)


def record_browser_run(tracer: Any, agent: str = "demo-browser-agent") -> BrowserRunResult:
    """Drive Chromium through the booking site and record the run through `tracer`.

    Returns the run id and the numbers of spans and frames recorded. The spans go out when the
    run ends; call `tracer.flush()` to wait for Kafka. Raises BrowserUnavailableError when
    Chromium or Playwright is missing.
    """
    check_chromium()
    from playwright.sync_api import sync_playwright

    run_started_ns = time.time_ns()
    with serve_site() as base_url, tracer.run(agent) as run, sync_playwright() as playwright:
        recorder = _Recorder(run=run, plan_span_id=_new_span_id())
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM_PATH), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(ACTION_TIMEOUT_MS)
            _book_a_table(recorder, page, base_url)
        finally:
            browser.close()
        _record_plan(recorder, run_started_ns, time.time_ns())
        run_id = run.run_id
    spans = recorder.spans + 1  # the run's own root span of kind agent, recorded as the run ends
    logger.info("browser run recorded run_id=%s spans=%d frames=%d", run_id, spans, recorder.frames)
    return BrowserRunResult(run_id, spans, recorder.frames)


def _book_a_table(recorder: _Recorder, page: Any, base_url: str) -> None:
    _simulated_llm(
        recorder,
        "decide: open the restaurant list",
        prompt_tokens=1_240,
        completion_tokens=58,
        reply="Open the Table Finder home page and pick La Lumière.",
    )
    _action(recorder, page, "goto", url=f"{base_url}/index.html", run=lambda: page.goto(f"{base_url}/index.html"))
    _action(recorder, page, "click", selector="#book-lumiere", run=lambda: page.click("#book-lumiere"))
    _action(recorder, page, "fill", selector="#name", value="Ada Example", run=lambda: page.fill("#name", "Ada Example"))
    _action(recorder, page, "select_option", selector="#party", value="2", run=lambda: page.select_option("#party", "2"))
    _action(recorder, page, "fill", selector="#time", value="19:30", run=lambda: page.fill("#time", "19:30"))
    _simulated_llm(
        recorder,
        "decide: submit the booking",
        prompt_tokens=2_315,
        completion_tokens=41,
        reply="Click the 'Book now' button.",
        cached_tokens=1_024,
    )
    # The model guessed a button id that the page does not have: this step fails on purpose.
    _action(
        recorder,
        page,
        "click",
        selector="#book-now",
        run=lambda: page.click("#book-now", timeout=MISSING_SELECTOR_TIMEOUT_MS),
    )
    _action(recorder, page, "click", selector="#submit", run=lambda: page.click("#submit"))
    _action(recorder, page, "wait_for_selector", selector="#confirmation", run=lambda: page.wait_for_selector("#confirmation"))


def _action(
    recorder: _Recorder,
    page: Any,
    action: str,
    *,
    run: Callable[[], Any],
    selector: str | None = None,
    url: str | None = None,
    value: str | None = None,
) -> None:
    """Run one Playwright action as a browser span, then capture the viewport as a frame."""
    from playwright.sync_api import Error as PlaywrightError

    step = recorder.next_step()
    span_id = _new_span_id()
    arguments = {key: item for key, item in (("selector", selector), ("url", url), ("value", value)) if item is not None}
    status, error_message = "ok", None
    start_ns = time.time_ns()
    try:
        run()
    except PlaywrightError as error:
        status = "error"
        error_message = str(error).splitlines()[0] if str(error) else type(error).__name__
        logger.info("demo browser action failed as scripted step=%d action=%s error=%s", step, action, error_message)
    end_ns = time.time_ns()

    attributes = {f"browser.{key}": item for key, item in arguments.items()}
    attributes["browser.page_url"] = page.url
    recorder.run.record_span(
        "browser",
        f"{action} {selector or url}",
        start_ns,
        end_ns,
        step=step,
        span_id=span_id,
        parent_span_id=recorder.plan_span_id,
        status=status,
        error_message=error_message,
        tool_name=action,
        tool_args=_json(arguments),
        attributes=attributes,
    )
    recorder.spans += 1

    screenshot = _capture_viewport(page, step)
    if screenshot is None:
        return
    size = page.viewport_size or VIEWPORT
    recorder.run.record_frame(
        screenshot,
        step=step,
        content_type="image/png",
        kind="viewport",
        capture_ns=time.time_ns(),
        span_id=span_id,
        width=size["width"],
        height=size["height"],
    )
    recorder.frames += 1


def _capture_viewport(page: Any, step: int) -> bytes | None:
    """Return a PNG of the viewport once the page has loaded, or None after SCREENSHOT_ATTEMPTS failures."""
    from playwright.sync_api import Error as PlaywrightError

    for attempt in range(1, SCREENSHOT_ATTEMPTS + 1):
        try:
            # A click that navigates returns before the next page is painted, and Chromium cannot
            # capture a page in the middle of a navigation.
            page.wait_for_load_state("load")
            return page.screenshot(type="png")
        except PlaywrightError as error:
            logger.warning("demo screenshot failed step=%d attempt=%d error=%s", step, attempt, error)
            time.sleep(0.2 * attempt)
    logger.error("demo frame skipped after %d failed screenshots step=%d", SCREENSHOT_ATTEMPTS, step)
    return None


def _simulated_llm(
    recorder: _Recorder,
    name: str,
    *,
    prompt_tokens: int,
    completion_tokens: int,
    reply: str,
    cached_tokens: int = 0,
) -> None:
    """Record an LLM span with made-up usage; no model is called, so costs show without a key."""
    step = recorder.next_step()
    start_ns = time.time_ns()
    # A short pause gives the span a visible duration on a timeline.
    time.sleep(0.05)
    usage: Usage = normalise_usage(
        "openai.chat",
        {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    )
    recorder.run.record_span(
        "llm",
        name,
        start_ns,
        time.time_ns(),
        step=step,
        span_id=_new_span_id(),
        parent_span_id=recorder.plan_span_id,
        provider=SIMULATED_PROVIDER,
        model=SIMULATED_MODEL,
        usage=usage,
        attributes={"spanline.simulated": True, "llm.reply": reply},
    )
    recorder.spans += 1


def _record_plan(recorder: _Recorder, start_ns: int, end_ns: int) -> None:
    recorder.run.record_span(
        "plan",
        "book a table for 2 at La Lumière",
        start_ns,
        end_ns,
        step=1,
        span_id=recorder.plan_span_id,
        attributes={
            "plan.goal": "Book a table for 2 at La Lumière at 19:30",
            "plan.steps": ["open the list", "choose the restaurant", "fill the form", "submit"],
        },
    )
    recorder.spans += 1


def _new_span_id() -> str:
    return secrets.token_hex(8)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
