"""Prometheus metrics of the replay service, in their own registry so tests can build many apps."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class ReplayMetrics:
    """The replay service's metrics, registered in `registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.sessions = Gauge(
            "spanline_replay_sessions", "WebSocket replay sessions open now", registry=self.registry
        )
        self.bytes_sent = Counter(
            "spanline_replay_bytes_sent", "Bytes sent to replay viewers over WebSockets", registry=self.registry
        )
        self.frames_sent = Counter(
            "spanline_replay_frames_sent", "Frames sent to replay viewers", registry=self.registry
        )
        self.control_errors = Counter(
            "spanline_replay_control_errors",
            "Control messages rejected, by error code",
            ["code"],
            registry=self.registry,
        )
        self.s3_reads = Counter(
            "spanline_replay_s3_reads", "Frame objects read from S3 (cache misses and read-ahead)", registry=self.registry
        )
