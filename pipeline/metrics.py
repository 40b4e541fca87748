"""Prometheus metrics of the workers and the replay service, all under the `spanline_` prefix.

Labels are bounded: topics, partitions, sinks, reasons and provider names. Run, trace and span ids
never become labels, because each would create a new time series.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

PREFIX = "spanline"

# Batches are written every 50-500 ms; the buckets cover a fast COPY up to a stalled database.
_WRITE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# End-to-end latency from span end to committed row: sub-second is the goal, minutes is an outage.
_LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)

SPANS_CONSUMED = Counter(
    f"{PREFIX}_spans_consumed", "Spans decoded from Kafka messages.", ["topic"]
)
SPANS_STORED = Counter(
    f"{PREFIX}_spans_stored", "Spans committed to the spans hypertable."
)
SPANS_SKIPPED_DUPLICATE = Counter(
    f"{PREFIX}_spans_skipped_duplicate",
    "Spans of redelivered messages whose offsets the database already had; not stored again.",
)
MESSAGES_DEAD_LETTERED = Counter(
    f"{PREFIX}_messages_dead_lettered",
    "Kafka messages copied to a dead-letter topic, by source topic and reason.",
    ["topic", "reason"],
)
SINK_WRITE_DURATION = Histogram(
    f"{PREFIX}_sink_write_duration_seconds",
    "Time to write one batch, including the offset commit, by sink.",
    ["sink"],
    buckets=_WRITE_BUCKETS_S,
)
SINK_ERRORS = Counter(
    f"{PREFIX}_sink_errors", "Failed sink writes that will be retried, by sink and error type.",
    ["sink", "error_type"],
)
END_TO_END_LATENCY = Histogram(
    f"{PREFIX}_end_to_end_latency_seconds",
    "Time from a span's end (or a frame's capture) to its row being committed, by sink.",
    ["sink"],
    buckets=_LATENCY_BUCKETS_S,
)
CONSUMER_LAG = Gauge(
    f"{PREFIX}_consumer_lag_messages",
    "Messages between the last stored offset and the partition's end offset.",
    ["topic", "partition"],
)
FRAMES_STORED = Counter(f"{PREFIX}_frames_stored", "Frames whose metadata row was committed.")
FRAME_BYTES_STORED = Counter(
    f"{PREFIX}_frame_bytes_stored", "Bytes of frame blobs written to the object store."
)
FRAMES_DEDUPLICATED = Counter(
    f"{PREFIX}_frames_deduplicated",
    "Frames whose blob was already in the object store under the same content hash.",
)
BUILD_INFO = Info(f"{PREFIX}_build", "Version of the running Spanline build.")

# Agent step durations per span kind, so alerts can watch the agents themselves, not only the
# pipeline. Buckets span a fast tool call to a long browser wait.
_STEP_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
STEP_DURATION = Histogram(
    f"{PREFIX}_step_duration_seconds",
    "Duration of action spans (llm, tool, browser, inbox) applied by the runs worker, by kind.",
    ["kind"],
    buckets=_STEP_BUCKETS_S,
)
RUNS_COMPLETED = Counter(
    f"{PREFIX}_runs_completed", "Runs that reached a final status, by status.", ["status"]
)
RUNS_DROPPED = Counter(
    f"{PREFIX}_runs_dropped", "Finished runs removed from the runs worker's table after the retention time."
)
REPLANS = Counter(f"{PREFIX}_replans", "Replans detected in runs, counted when first applied.")
