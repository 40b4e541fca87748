"""A running worker's /metrics shows the documented metric names with real values."""

from __future__ import annotations

import re
import urllib.request
import uuid

from confluent_kafka import Producer

from pipeline.pricing.usage import Usage
from tests.conftest import REPO_ROOT, IsolatedPipeline
from tests.integration.helpers import count_rows, publish_llm_spans, start_worker, wait_for

# Metrics each worker role must expose once it has processed traffic.
ROLE_METRICS = {
    "spans": [
        "spanline_spans_consumed_total", "spanline_spans_stored_total",
        "spanline_messages_dead_lettered_total", "spanline_spans_unpriced_total",
        "spanline_sink_write_duration_seconds", "spanline_end_to_end_latency_seconds",
        "spanline_build_info",
    ],
    "runs": [
        "spanline_step_duration_seconds", "spanline_runs_completed_total",
        "spanline_replans_total", "spanline_runs_dropped_total", "spanline_build_info",
    ],
}


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return response.read().decode()


def _value(text: str, series: str) -> float:
    """Return the sum of every sample of `series` (any labels) in the exposition text."""
    pattern = re.compile(rf"^{re.escape(series)}(?:{{[^}}]*}})? (\S+)$", re.MULTILINE)
    return sum(float(match) for match in pattern.findall(text))


def test_documented_metrics_are_exposed(isolated: IsolatedPipeline) -> None:
    settings = isolated.settings
    dsn = settings.database_dsn.reveal()
    prefix = f"metrics-{uuid.uuid4().hex[:8]}"
    documented = (REPO_ROOT / "docs" / "metrics.md").read_text()

    publish_llm_spans(settings, prefix, runs=2, spans_per_run=20)
    publish_llm_spans(settings, prefix + "-unpriced", runs=1, spans_per_run=5,
                      model="acme-llm-9", provider="acme",
                      usage=Usage(input_tokens=10, output_tokens=1))
    _publish_completed_run(settings, prefix + "-done")
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    producer.produce(settings.spans_topic, key=b"bad", value=b"not avro")
    producer.flush(10)

    span_worker = start_worker(isolated, "spans", "metrics-span-worker")
    runs_worker = start_worker(isolated, "runs", "metrics-runs-worker")
    try:
        wait_for(lambda: count_rows(dsn, "SELECT count(*) FROM spans WHERE run_id LIKE %s",
                                    (prefix + "%",)) == 47,
                 timeout_s=60, what="47 stored spans")
        wait_for(lambda: count_rows(dsn, "SELECT coalesce(sum(span_count), 0) FROM run_state"
                                    " WHERE run_id LIKE %s", (prefix + "%",)) == 47,
                 timeout_s=60, what="run state of 47 spans")
        texts = {"spans": _scrape(span_worker.web_port), "runs": _scrape(runs_worker.web_port)}
    finally:
        span_worker.stop()
        runs_worker.stop()

    for role, names in ROLE_METRICS.items():
        for name in names:
            assert f"`{name}`" in documented, f"{name} is exposed but not in docs/metrics.md"
            assert re.search(rf"^{name}", texts[role], re.MULTILINE), f"{role} lacks {name}"

    spans_text = texts["spans"]
    assert _value(spans_text, "spanline_spans_stored_total") == 47
    assert _value(spans_text, "spanline_messages_dead_lettered_total") == 1
    assert 'reason="bad_magic"' in spans_text
    assert _value(spans_text, "spanline_spans_unpriced_total") == 5
    assert _value(texts["runs"], "spanline_step_duration_seconds_count") == 46
    assert _value(texts["runs"], "spanline_runs_completed_total") == 1
    # No run, trace or span id may become a label value.
    assert prefix not in spans_text
    assert prefix not in texts["runs"]


def _publish_completed_run(settings, run_id: str) -> None:
    """Publish a run whose root agent span ends, so the runs worker completes it."""
    import time

    from pipeline.sdk import Tracer

    tracer = Tracer(settings)
    start = time.time_ns()
    with tracer.run(agent="metrics-agent", run_id=run_id, root_span=False) as run:
        run.record_span("tool", "search", start, start + 1_000_000, step=1)
        run.record_span("agent", "run", start, start + 2_000_000, step=1, parent_span_id="")
    tracer.close()
