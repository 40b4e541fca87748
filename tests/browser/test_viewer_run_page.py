"""The run viewer in headless Chromium against a run recorded here with the browser helper."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from pipeline.replay.process import ReplayServerProcess
from pipeline.replay.tokens import TokenSigner
from tests.conftest import REPO_ROOT, IsolatedPipeline, free_port
from tests.integration.helpers import count_rows, start_worker, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SECRET = "browser-test-secret-" + uuid.uuid4().hex
ARTIFACTS = REPO_ROOT / "artifacts"


@dataclass
class Viewer:
    isolated: IsolatedPipeline
    server: ReplayServerProcess
    signer: TokenSigner
    dsn: str

    def url(self, run_id: str) -> str:
        return f"{self.server.base_url}/runs/{run_id}?token={self.signer.sign(run_id)}"


@pytest.fixture
def viewer(isolated: IsolatedPipeline) -> Iterator[Viewer]:
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}; install the Debian package chromium")
    workers = [start_worker(isolated, "spans", "viewer-spans"), start_worker(isolated, "frames", "viewer-frames")]
    server = ReplayServerProcess(free_port(), isolated.state_dir / "logs" / "replay.log",
                                 env={**isolated.env, "SPANLINE_REPLAY_SECRET": SECRET})
    try:
        server.start()
        yield Viewer(isolated, server, TokenSigner(SECRET.encode()), isolated.settings.database_dsn.reveal())
    finally:
        server.stop()
        for worker in workers:
            worker.stop()


def record_booking(run, base_url: str) -> None:  # type: ignore[no-untyped-def]
    """Drive the demo site through the browser helper, with one step that fails on purpose."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    from pipeline.sdk.browser import BrowserRecorder

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 800, "height": 500})
            recorder = BrowserRecorder(page, run)
            recorder.goto(f"{base_url}/index.html")
            recorder.click("#book-lumiere")
            recorder.fill("#name", "ada@example.org")
            with pytest.raises(PlaywrightError):
                recorder.click("#no-such-button", timeout=500)
            recorder.click("#submit")
        finally:
            browser.close()


def test_run_page_matches_database(viewer: Viewer) -> None:
    from playwright.sync_api import sync_playwright

    from pipeline.demo.browser_run import serve_site
    from pipeline.sdk import Tracer

    run_id = f"viewer-{uuid.uuid4().hex[:10]}"
    tracer = Tracer(viewer.isolated.settings)
    with serve_site() as base_url, tracer.run("viewer-test-agent", run_id=run_id) as run:
        record_booking(run, base_url)
    tracer.close()
    wait_for(lambda: count_rows(viewer.dsn, "SELECT count(*) FROM frames WHERE run_id = %s", (run_id,)) == 5, 60, "5 frames")
    # Five browser spans and the run's own root span of kind agent.
    wait_for(lambda: count_rows(viewer.dsn, "SELECT count(*) FROM spans WHERE run_id = %s", (run_id,)) == 6, 60, "6 spans")
    with psycopg.connect(viewer.dsn) as connection:
        frame_hashes = dict(connection.execute("SELECT step, sha256 FROM frames WHERE run_id = %s", (run_id,)).fetchall())
        errors = connection.execute("SELECT count(*) FROM spans WHERE run_id = %s AND status = 'error'", (run_id,)).fetchone()[0]
        steps = connection.execute("SELECT count(DISTINCT step) FROM spans WHERE run_id = %s", (run_id,)).fetchone()[0]
        values = [row[0] for row in connection.execute("SELECT attributes::text FROM spans WHERE run_id = %s", (run_id,))]
    assert not any("ada@example.org" in value for value in values), "e-mail reached the database unredacted"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(viewer.url(run_id))
            page.wait_for_selector("#viewport[data-sha-ok='true']", timeout=15_000)

            assert page.get_attribute(".kpi[data-kpi='steps']", "data-value") == str(steps)
            assert page.get_attribute(".kpi[data-kpi='errors']", "data-value") == str(errors)
            assert page.get_attribute(".kpi[data-kpi='tool-calls']", "data-value") == "5"

            page.click("#timeline tr[data-step='4']")
            page.wait_for_selector("#viewport[data-frame-step='4']", state="attached", timeout=10_000)
            assert page.get_attribute("#viewport", "data-frame-sha256") == frame_hashes[4]
            assert page.get_attribute("#viewport", "data-sha-ok") == "true"

            page.click("[data-filter='errors']")
            visible = page.locator("#timeline tbody tr:visible")
            assert visible.count() == errors
            assert visible.first.get_attribute("data-status") == "error"

            ARTIFACTS.mkdir(exist_ok=True)
            page.click("[data-filter='all']")
            page.screenshot(path=str(ARTIFACTS / "viewer-run-page.png"), full_page=True)
        finally:
            browser.close()


def test_follow_live_shows_new_step(viewer: Viewer) -> None:
    from playwright.sync_api import sync_playwright

    from pipeline.sdk import Tracer

    run_id = f"viewer-live-{uuid.uuid4().hex[:10]}"
    tracer = Tracer(viewer.isolated.settings, linger_ms=10)
    run = tracer.run("viewer-test-agent", run_id=run_id)
    with run.step() as step:
        with step.span("tool", "search", tool_name="search"):
            step.frame(b"first frame", content_type="text/plain")
    tracer.flush()
    wait_for(lambda: count_rows(viewer.dsn, "SELECT count(*) FROM spans WHERE run_id = %s", (run_id,)) == 1, 60, "first span")
    wait_for(lambda: count_rows(viewer.dsn, "SELECT count(*) FROM frames WHERE run_id = %s", (run_id,)) == 1, 60, "first frame")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(viewer.url(run_id))
            page.wait_for_selector("#timeline tr[data-step='1']", timeout=15_000)
            page.check("#follow")
            page.wait_for_function("document.getElementById('follow').checked")

            with run.step() as step:
                with step.span("tool", "open result", tool_name="open"):
                    step.frame(b"second frame", content_type="text/plain")
            run.close()
            tracer.flush()
            started = time.monotonic()
            page.wait_for_selector("#timeline tr[data-step='2']", timeout=30_000)
            page.wait_for_selector("#viewport[data-frame-step='2']", state="attached", timeout=30_000)
            assert page.text_content("#frame-text") == "second frame"
            assert page.get_attribute("#viewport", "data-sha-ok") == "true"
            print(f"new step visible {time.monotonic() - started:.2f} s after the flush")
        finally:
            browser.close()
            tracer.close()
