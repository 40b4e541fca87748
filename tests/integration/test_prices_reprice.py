"""Dated prices apply by span start time; stored costs change only through `spanline reprice`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from pipeline.cli import main
from pipeline.config import Settings
from pipeline.pricing.prices import to_ns
from pipeline.pricing.usage import Usage
from tests.conftest import IsolatedPipeline
from tests.integration.helpers import count_rows, start_worker, wait_for

BEFORE = datetime(2026, 5, 31, 23, 59, 59, tzinfo=UTC)
AFTER = datetime(2026, 6, 1, 0, 0, 1, tzinfo=UTC)
ONE_MILLION_INPUT = Usage(input_tokens=1_000_000)

TWO_PRICES = """\
prices:
  - provider: testlab
    model: {model}
    input: 1.00
  - provider: testlab
    model: {model}
    effective_from: 2026-06-01T00:00:00Z
    input: 0.50
"""

THIRD_PRICE = """\
  - provider: testlab
    model: {model}
    effective_from: 2026-05-01T00:00:00Z
    input: 0.80
"""


@dataclass(frozen=True)
class PricedPipeline:
    """An isolated pipeline with its own compacted prices topic and operator file."""

    pipeline: IsolatedPipeline
    prices_file: Path
    model: str

    @property
    def settings(self) -> Settings:
        return self.pipeline.settings

    @property
    def dsn(self) -> str:
        return self.settings.database_dsn.reveal()


def create_prices_topic(bootstrap: str, name: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=1, replication_factor=1, config={"cleanup.policy": "compact"})]
    )
    for future in futures.values():
        future.result(timeout=30)


def delete_topic(bootstrap: str, name: str) -> None:
    from confluent_kafka.admin import AdminClient

    AdminClient({"bootstrap.servers": bootstrap}).delete_topics([name], operation_timeout=30)


@pytest.fixture
def priced(isolated: IsolatedPipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PricedPipeline]:
    """Yield a pipeline whose worker and in-process CLI share one prices topic and file."""
    suffix = uuid.uuid4().hex[:10]
    topic = f"test.{suffix}.prices"
    create_prices_topic(isolated.settings.kafka_bootstrap, topic)
    prices_file = tmp_path / "prices.yaml"
    env = {**isolated.env, "SPANLINE_PRICES_TOPIC": topic, "SPANLINE_PRICES_FILE": str(prices_file)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pipeline = replace(
        isolated,
        settings=replace(isolated.settings, prices_topic=topic, prices_file=prices_file),
        env=env,
    )
    yield PricedPipeline(pipeline=pipeline, prices_file=prices_file, model=f"dated-{suffix}")
    delete_topic(isolated.settings.kafka_bootstrap, topic)


def publish_spans_at(settings: Settings, run_id: str, model: str, starts: list[datetime]) -> None:
    from pipeline.sdk import Tracer

    tracer = Tracer(settings, max_batch_spans=250)
    with tracer.run(agent="test-agent", run_id=run_id, root_span=False) as run:
        for step, start in enumerate(starts, start=1):
            begin = to_ns(start)
            run.record_span(
                "llm", f"chat {model}", begin, begin + 500_000_000, step=step,
                provider="testlab", model=model, usage=ONE_MILLION_INPUT,
            )
    stats = tracer.close()
    assert not any(stats.spans_dropped_by_reason.values()), f"SDK dropped spans: {stats}"


def stored_costs(dsn: str, run_id: str) -> dict[datetime, tuple[float | None, str | None, str]]:
    with psycopg.connect(dsn) as connection:
        rows = connection.execute(
            "SELECT start_time, cost_usd, price_id, pricing_status FROM spans WHERE run_id = %s",
            (run_id,),
        ).fetchall()
    return {start: (cost, price_id, status) for start, cost, price_id, status in rows}


def set_prices(priced: PricedPipeline, text: str) -> None:
    priced.prices_file.write_text(text.format(model=priced.model))
    assert main(["prices", "set", str(priced.prices_file)]) == 0


def store_two_spans(priced: PricedPipeline, run_id: str) -> None:
    publish_spans_at(priced.settings, run_id, priced.model, [BEFORE, AFTER])
    worker = start_worker(priced.pipeline, "spans", "span-worker-reprice")
    try:
        wait_for(
            lambda: count_rows(priced.dsn, "SELECT count(*) FROM spans WHERE run_id = %s", (run_id,)) == 2,
            timeout_s=60, what="2 stored spans",
        )
    finally:
        worker.stop()


def test_dated_price_applies_by_start_time(priced: PricedPipeline) -> None:
    set_prices(priced, TWO_PRICES)
    run_id = f"dated-{uuid.uuid4().hex[:8]}"
    store_two_spans(priced, run_id)

    costs = stored_costs(priced.dsn, run_id)
    assert costs[BEFORE][0] == pytest.approx(1.00, rel=1e-12)
    assert costs[AFTER][0] == pytest.approx(0.50, rel=1e-12)
    assert costs[BEFORE][1] == f"operator:testlab:{priced.model}:1970-01-01T00:00:00Z"
    assert costs[AFTER][1] == f"operator:testlab:{priced.model}:2026-06-01T00:00:00Z"


def test_new_price_changes_nothing_until_reprice(priced: PricedPipeline, capsys: pytest.CaptureFixture[str]) -> None:
    set_prices(priced, TWO_PRICES)
    run_id = f"reprice-{uuid.uuid4().hex[:8]}"
    store_two_spans(priced, run_id)
    stored = stored_costs(priced.dsn, run_id)

    set_prices(priced, TWO_PRICES + THIRD_PRICE)
    assert stored_costs(priced.dsn, run_id) == stored, "a new price must not change stored costs"

    window = ["--from", "2026-05-31T00:00:00Z", "--to", "2026-06-02T00:00:00Z", "--model", priced.model]
    assert main(["reprice", *window, "--dry-run"]) == 0
    assert "would change 1" in capsys.readouterr().out
    assert stored_costs(priced.dsn, run_id) == stored, "a dry run must not change stored costs"

    assert main(["reprice", *window, "--reason", "third price"]) == 0
    repriced = stored_costs(priced.dsn, run_id)
    assert repriced[BEFORE][0] == pytest.approx(0.80, rel=1e-12)
    assert repriced[BEFORE][1] == f"operator:testlab:{priced.model}:2026-05-01T00:00:00Z"
    assert repriced[AFTER] == stored[AFTER]

    with psycopg.connect(priced.dsn) as connection:
        audit = connection.execute(
            "SELECT start_time, old_cost_usd, new_cost_usd, old_price_id, new_price_id, "
            "old_pricing_status, new_pricing_status, reason FROM span_cost_audit WHERE run_id = %s",
            (run_id,),
        ).fetchall()
    assert len(audit) == 1, "only the span whose cost changed is audited"
    start, old_cost, new_cost, old_id, new_id, old_status, new_status, reason = audit[0]
    assert start == BEFORE
    assert old_cost == pytest.approx(1.00, rel=1e-12)
    assert new_cost == pytest.approx(0.80, rel=1e-12)
    assert old_id == f"operator:testlab:{priced.model}:1970-01-01T00:00:00Z"
    assert new_id == f"operator:testlab:{priced.model}:2026-05-01T00:00:00Z"
    assert (old_status, new_status) == ("priced", "priced")
    assert reason.endswith("third price")

    assert main(["reprice", *window]) == 0
    assert count_rows(priced.dsn, "SELECT count(*) FROM span_cost_audit WHERE run_id = %s", (run_id,)) == 1, (
        "a second reprice with the same prices changes and audits nothing"
    )
