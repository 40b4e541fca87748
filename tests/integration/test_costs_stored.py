"""Spans with known usage are stored with exactly the cost their prices give."""

from __future__ import annotations

import uuid
from dataclasses import replace

import psycopg
import pytest

from pipeline.pricing.usage import Usage
from tests.conftest import REPO_ROOT, IsolatedPipeline
from tests.integration.helpers import count_rows, publish_llm_spans, start_worker, wait_for

OPERATOR_PRICES = REPO_ROOT / "tests" / "fixtures" / "operator_prices.yaml"

CASES = [
    # (model, usage, expected cost USD, pricing status)
    (
        "test-openai-shaped",
        Usage(input_tokens=2_000, cache_read_tokens=8_000, output_tokens=500),
        0.012,
        "priced",
    ),
    (
        "test-anthropic-shaped",
        Usage(input_tokens=1_000, cache_read_tokens=6_000, cache_write_tokens=2_000,
              output_tokens=300),
        0.0168,
        "priced",
    ),
    ("acme-llm-9", Usage(input_tokens=1_000, output_tokens=10), None, "unpriced"),
]


@pytest.mark.parametrize(("model", "usage", "expected_cost", "status"), CASES)
def test_stored_costs_match_prices(
    isolated: IsolatedPipeline, model: str, usage: Usage, expected_cost: float | None, status: str
) -> None:
    pipeline = replace(
        isolated,
        settings=replace(isolated.settings, prices_file=OPERATOR_PRICES),
        env={**isolated.env, "SPANLINE_PRICES_FILE": str(OPERATOR_PRICES)},
    )
    dsn = pipeline.settings.database_dsn.reveal()
    prefix = f"cost-{uuid.uuid4().hex[:8]}"
    runs, spans_per_run = 3, 50

    publish_llm_spans(
        pipeline.settings, prefix, runs, spans_per_run, model=model, provider="testlab",
        usage=usage,
    )
    worker = start_worker(pipeline, "spans", "span-worker-costs")
    try:
        wait_for(
            lambda: count_rows(dsn, "SELECT count(*) FROM spans WHERE run_id LIKE %s",
                               (prefix + "%",)) == runs * spans_per_run,
            timeout_s=60, what=f"{runs * spans_per_run} priced spans",
        )
    finally:
        worker.stop()

    with psycopg.connect(dsn) as connection:
        rows = connection.execute(
            "SELECT cost_usd, pricing_status, price_id FROM spans WHERE run_id LIKE %s",
            (prefix + "%",),
        ).fetchall()
    assert len(rows) == runs * spans_per_run
    for cost, stored_status, price_id in rows:
        assert stored_status == status
        if expected_cost is None:
            assert cost is None, "an unknown model must have no cost, never 0"
            assert price_id is None
        else:
            assert cost == pytest.approx(expected_cost, rel=1e-12)
            assert price_id.startswith("operator:testlab:" + model)
