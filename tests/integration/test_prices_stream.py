"""A price published while a faust worker runs reaches its price book without a restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import psycopg
import pytest

from pipeline.cli import main
from pipeline.pricing.usage import Usage
from tests.conftest import REPO_ROOT, IsolatedPipeline, free_port
from tests.integration.helpers import count_rows, publish_llm_spans, start_worker, wait_for
from tests.integration.test_prices_reprice import create_prices_topic, delete_topic

# A faust app built like the span worker's (create_app) with only the price table attached;
# GET /price?provider=P&model=M returns the entry its book resolves now.
PRICE_APP = """
import faust
from pipeline.config import Settings
from pipeline.pricing.stream import attach_price_table
from pipeline.workers.app import create_app

settings = Settings.from_env()
app = create_app("spans", settings, "127.0.0.1", {port})
source = attach_price_table(app, settings)

@app.agent(app.topic(settings.spans_topic, key_type=bytes, value_type=bytes), name="ignore-spans")
async def ignore_spans(stream):
    app.spanline_ready = True
    async for _ in stream:
        pass

@app.page("/price")
async def price(web, request):
    entry = source.book().resolve(request.query.get("provider"), request.query["model"])
    return web.json({{"entry": entry.to_dict() if entry else None}})

faust.Worker(app, loglevel="INFO").execute_from_commandline()
"""

PRICE = """\
prices:
  - {{provider: testlab, model: {model}, input: {input}, output: 1.00}}
"""


@pytest.fixture
def prices_env(isolated: IsolatedPipeline, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    topic = f"test.{uuid.uuid4().hex[:10]}.prices"
    create_prices_topic(isolated.settings.kafka_bootstrap, topic)
    env = {**isolated.env, "SPANLINE_PRICES_TOPIC": topic}
    env.pop("SPANLINE_PRICES_FILE", None)
    monkeypatch.delenv("SPANLINE_PRICES_FILE", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env
    delete_topic(isolated.settings.kafka_bootstrap, topic)


def set_price(tmp_path: Path, model: str, input_price: str) -> None:
    path = tmp_path / f"price-{input_price}.yaml"
    path.write_text(PRICE.format(model=model, input=input_price))
    assert main(["prices", "set", str(path)]) == 0


def resolved_input_price(port: int, model: str) -> str | None:
    url = f"http://127.0.0.1:{port}/price?provider=testlab&model={model}"
    with urllib.request.urlopen(url, timeout=5) as response:
        entry = json.load(response)["entry"]
    return entry["prices"]["input"] if entry else None


def test_price_change_reaches_running_app(
    isolated: IsolatedPipeline, prices_env: dict[str, str], tmp_path: Path
) -> None:
    model = f"stream-{uuid.uuid4().hex[:8]}"
    set_price(tmp_path, model, "1.00")
    port = free_port()
    script = tmp_path / "price_app.py"
    script.write_text(PRICE_APP.format(port=port))
    log_path = tmp_path / "price_app.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, str(script), "worker"], cwd=REPO_ROOT, stdout=log_file,
            stderr=subprocess.STDOUT, env={**os.environ, **prices_env, "PYTHONPATH": str(REPO_ROOT)},
        )
    try:
        def price_is(expected: str) -> bool:
            try:
                return resolved_input_price(port, model) == expected
            except OSError:
                return False

        wait_for(lambda: price_is("1.0"), timeout_s=60, what=f"input price 1.0 of {model} (log {log_path})")
        set_price(tmp_path, model, "3.00")
        wait_for(lambda: price_is("3.0"), timeout_s=15, what=f"input price 3.0 of {model} (log {log_path})")
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_span_worker_uses_new_price_without_restart(
    isolated: IsolatedPipeline, prices_env: dict[str, str], tmp_path: Path
) -> None:
    from dataclasses import replace

    pipeline = replace(isolated, env=prices_env)
    settings = replace(isolated.settings, prices_topic=prices_env["SPANLINE_PRICES_TOPIC"])
    dsn = settings.database_dsn.reveal()
    model = f"stream-{uuid.uuid4().hex[:8]}"
    usage = Usage(input_tokens=1_000_000)
    set_price(tmp_path, model, "1.00")

    worker = start_worker(pipeline, "spans", "span-worker-prices-stream")
    try:
        first = f"first-{uuid.uuid4().hex[:8]}"
        publish_llm_spans(settings, first, 1, 10, model=model, provider="testlab", usage=usage)
        wait_for(lambda: count_rows(dsn, "SELECT count(*) FROM spans WHERE run_id LIKE %s", (first + "%",)) == 10,
                 timeout_s=60, what="10 spans at the first price")

        set_price(tmp_path, model, "3.00")
        # The book is rebuilt at most once a second after a record arrives.
        time.sleep(3)
        second = f"second-{uuid.uuid4().hex[:8]}"
        publish_llm_spans(settings, second, 1, 10, model=model, provider="testlab", usage=usage)
        wait_for(lambda: count_rows(dsn, "SELECT count(*) FROM spans WHERE run_id LIKE %s", (second + "%",)) == 10,
                 timeout_s=60, what="10 spans at the second price")
    finally:
        worker.stop()

    with psycopg.connect(dsn) as connection:
        costs = dict(connection.execute(
            "SELECT split_part(run_id, '-', 1), array_agg(DISTINCT cost_usd) FROM spans "
            "WHERE run_id LIKE %s OR run_id LIKE %s GROUP BY 1", (first + "%", second + "%"),
        ).fetchall())
    assert costs["first"] == [pytest.approx(1.00, rel=1e-12)]
    assert costs["second"] == [pytest.approx(3.00, rel=1e-12)]
