"""One load run: own topics, own span workers, produce for a window, measure, verify, report.

    python -m load.run --rate max --duration 60 --warmup 10 --workers 1 --partitions 4

Figures come from the database after the run: spans stored per second (by ingest_time), and
latency as ingest_time - end_time, where the generator stamps end_ns at produce time.
NOTE: ingest_time defaults to now(), the start of the sink's write transaction, so the latency
excludes the COPY and commit of the span's own write (a few hundred ms at most per write).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg

from load.profile import stage_shares, start_profile
from load.generator import Generator, ProducerConfig, ProducerResult
from load.shapes import TrafficShape, load_shape
from load.verify import compare, stored_counts
from pipeline.config import Settings

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DRAIN_TIMEOUT_S = 120.0
# Seconds between backlog checks, and the share of --max-backlog-spans below which producing resumes.
BACKLOG_CHECK_S = 0.2
RESUME_FRACTION = 0.75


@dataclass
class LoadOptions:
    """Everything one load run needs; the CLI flags map one to one."""

    bootstrap: str
    dsn: str
    s3_endpoint: str
    rate: float  # spans/s offered; 0 means as many as the generator can
    duration_s: float = 60.0
    warmup_s: float = 10.0
    workers: int = 1
    partitions: int = 4
    producers: int = 1
    report_dir: Path = Path("artifacts/load")
    external_workers: bool = False
    topic: str | None = None
    compression: str = "zstd"
    linger_ms: int = 50
    # Producing pauses while the backlog exceeds this many spans (at any rate), so the drain
    # after the window stays short; a paused run reports the rate it really offered.
    max_backlog_spans: int = 50_000
    keep_data: bool = False
    # Consumer group whose stored offsets give the lag; None means the group of our own workers.
    consumer_group: str | None = None
    label: str = "load"
    # Sample worker 0 with py-spy during the window and report the share of time per stage.
    profile: bool = False
    shape: TrafficShape | None = None


@dataclass
class Sample:
    at: float
    delivered_spans: int
    stored_messages: int
    lag_messages: int
    paused: bool
    cpu_percent: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)


class ProcessGroups:
    """CPU and RSS of named process trees (broker, database, workers, generator), via psutil."""

    def __init__(self, roots: dict[str, list[int]], without_children: frozenset[str] = frozenset()) -> None:
        # The harness's own children are the workers and producers, already counted in their groups.
        self._without_children = without_children
        self._roots = {name: [psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)]
                       for name, pids in roots.items()}
        self._last: dict[str, tuple[float, float]] = {}

    def sample(self) -> tuple[dict[str, float], dict[str, float]]:
        """Return CPU percent (of one core) since the previous sample and RSS in MiB per group."""
        now = time.monotonic()
        cpu: dict[str, float] = {}
        rss: dict[str, float] = {}
        for name, roots in self._roots.items():
            seconds = 0.0
            resident = 0
            members = roots if name in self._without_children else _with_children(roots)
            for process in members:
                try:
                    times = process.cpu_times()
                    seconds += times.user + times.system
                    resident += process.memory_info().rss
                except psutil.Error:
                    continue
            previous = self._last.get(name)
            if previous is not None and now > previous[0]:
                cpu[name] = max(0.0, 100.0 * (seconds - previous[1]) / (now - previous[0]))
            self._last[name] = (now, seconds)
            rss[name] = resident / 2**20
        return cpu, rss


def _with_children(roots: list[psutil.Process]) -> list[psutil.Process]:
    processes = []
    for root in roots:
        processes.append(root)
        try:
            processes.extend(root.children(recursive=True))
        except psutil.Error:
            pass
    return processes


def stack_pids(settings: Settings) -> dict[str, list[int]]:
    """Find the broker's and the database's PIDs from the stack's PID files, else by port."""
    found: dict[str, list[int]] = {}
    run_dir = settings.state_dir / "run"
    for name, file_name, port in (
        ("kafka", "kafka.pid", int(settings.kafka_bootstrap.rsplit(":", 1)[1])),
        ("postgres", "postgres.pid", _dsn_port(settings.database_dsn.reveal())),
    ):
        pid = _pid_from_file(run_dir / file_name)
        if pid is None:
            pid = _pid_listening_on(port)
        if pid is not None:
            found[name] = [pid]
        else:
            logger.warning("no PID found for %s; its CPU and memory are not reported", name)
    return found


def _pid_from_file(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    try:
        pid = int(json.loads(text)["pid"]) if text.startswith("{") else int(text)
    except (ValueError, KeyError, TypeError):
        return None
    return pid if psutil.pid_exists(pid) else None


def _pid_listening_on(port: int) -> int | None:
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return None
    for connection in connections:
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
            return connection.pid
    return None


def _dsn_port(dsn: str) -> int:
    for part in dsn.split():
        if part.startswith("port="):
            return int(part.split("=", 1)[1])
    return 5432


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class KafkaWatch:
    """High watermarks of the load topic and the offsets the sink stored, for lag."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self._consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"load-watch-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        })
        self._partitions = [TopicPartition(topic, partition) for partition in range(partitions)]

    def high_watermarks(self) -> dict[int, int]:
        return {
            tp.partition: self._consumer.get_watermark_offsets(tp, timeout=5, cached=False)[1]
            for tp in self._partitions
        }

    def close(self) -> None:
        self._consumer.close()


def stored_offsets(connection: psycopg.Connection, group: str, topic: str) -> dict[int, int]:
    rows = connection.execute(
        "SELECT partition, next_offset FROM sink_offsets WHERE consumer_group = %s AND topic = %s",
        (group, topic),
    ).fetchall()
    return dict(rows)


def create_topics(bootstrap: str, names: dict[str, int]) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([
        NewTopic(name, num_partitions=partitions, replication_factor=1,
                 config={"max.message.bytes": str(16 * 1024 * 1024), "retention.ms": "3600000"})
        for name, partitions in names.items()
    ])
    for future in futures.values():
        future.result(timeout=30)


def delete_topics(bootstrap: str, names: list[str]) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for name, future in admin.delete_topics(names, operation_timeout=30).items():
        try:
            future.result(timeout=30)
        except Exception as error:  # noqa: BLE001 - cleanup reports and goes on
            logger.warning("could not delete topic=%s error=%s", name, error)


def run_load(options: LoadOptions) -> dict[str, Any]:
    """Run one load test end to end and return its report (also written to report_dir)."""
    from pipeline.workers.process import WorkerProcess

    settings = Settings.from_env(kafka_bootstrap=options.bootstrap)
    shape = options.shape or load_shape()
    suffix = uuid.uuid4().hex[:8]
    run_prefix = f"load-{suffix}"
    topic = options.topic or f"load.{suffix}.spans"
    dlq_topic = f"{topic}.dlq"
    group_prefix = f"load-{suffix}"
    report_dir = options.report_dir / f"{options.label}-{time.strftime('%Y%m%d-%H%M%S')}-{suffix}"
    report_dir.mkdir(parents=True, exist_ok=True)
    created_topics: list[str] = []
    workers: list[WorkerProcess] = []
    generator: Generator | None = None
    connection = psycopg.connect(options.dsn, autocommit=True)
    watch: KafkaWatch | None = None
    since_ns = time.time_ns() - 3600 * 10**9
    try:
        if options.topic is None:
            create_topics(options.bootstrap, {topic: options.partitions, dlq_topic: 1})
            created_topics = [topic, dlq_topic]
        watch = KafkaWatch(options.bootstrap, topic, options.partitions)
        if not options.external_workers:
            env = {
                "SPANLINE_KAFKA_BOOTSTRAP": options.bootstrap,
                "SPANLINE_DATABASE_DSN": options.dsn,
                "SPANLINE_S3_ENDPOINT": options.s3_endpoint,
                "SPANLINE_SPANS_TOPIC": topic,
                "SPANLINE_SPANS_DLQ_TOPIC": dlq_topic,
                "SPANLINE_CONSUMER_GROUP_PREFIX": group_prefix,
                "SPANLINE_STATE_DIR": str(report_dir / "state"),
                "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            }
            for index in range(options.workers):
                worker = WorkerProcess("spans", _free_port(), report_dir / f"worker-{index}.log", env)
                worker.start()
                workers.append(worker)
            for worker in workers:
                worker.wait_ready()
        per_producer = options.rate / options.producers if options.rate else 0.0
        generator = Generator([
            ProducerConfig(
                bootstrap=options.bootstrap, topic=topic, run_prefix=run_prefix,
                producer_index=index, shape=shape, rate=per_producer,
                compression=options.compression, linger_ms=options.linger_ms,
            )
            for index in range(options.producers)
        ])
        generator.prepare()
        groups = ProcessGroups({
            **stack_pids(settings),
            **{f"worker-{i}": [w.pid] for i, w in enumerate(workers) if w.pid},
            "generator": generator.pids,
            "harness": [os.getpid()],
        }, without_children=frozenset({"harness"}))
        group = options.consumer_group or f"{group_prefix}-spans"
        profile_path = report_dir / "worker-0.collapsed.txt"
        samples, window = _produce_and_watch(
            options, generator, watch, connection, group, topic, groups,
            [w.pid for w in workers if w.pid], profile_path,
        )
        results = generator.stop()
        generator = None
        drained = _wait_for_drain(watch, connection, group, topic)
        report = _build_report(options, shape, run_prefix, topic, dlq_topic, results, samples,
                               window, drained, connection, since_ns, watch)
        if profile_path.exists():
            report["worker_stage_shares"] = stage_shares(profile_path)
    finally:
        if generator is not None:
            try:
                generator.stop(timeout_s=30)
            except RuntimeError as error:
                logger.warning("stopping producers failed: %s", error)
        for worker in workers:
            worker.stop()
        if watch is not None:
            watch.close()
        if not options.keep_data:
            connection.execute("DELETE FROM spans WHERE run_id LIKE %s", (run_prefix + "-%",))
            connection.execute("DELETE FROM sink_offsets WHERE consumer_group LIKE %s",
                               (group_prefix + "-%",))
            if created_topics:
                delete_topics(options.bootstrap, created_topics)
        connection.close()
    _write_report(report, report_dir)
    return report


def _produce_and_watch(
    options: LoadOptions, generator: Generator, watch: KafkaWatch,
    connection: psycopg.Connection, group: str, topic: str, groups: ProcessGroups,
    workers_pids: list[int], profile_path: Path,
) -> tuple[list[Sample], tuple[float, float]]:
    generator.start()
    started = time.time()
    window_start = started + options.warmup_s
    window_end = window_start + options.duration_s
    samples: list[Sample] = []
    paused = False
    groups.sample()
    profiler = None
    next_sample = started + 1.0
    while time.time() < window_end:
        if options.profile and profiler is None and time.time() >= window_start and workers_pids:
            profiler = start_profile(workers_pids[0], options.duration_s - 2, profile_path)
        # The backlog is checked several times per sample: checked once a second, a pipeline
        # faster than the resume threshold drained it and sat idle, so the harness capped e2e.
        time.sleep(BACKLOG_CHECK_S)
        high = watch.high_watermarks()
        stored = stored_offsets(connection, group, topic)
        lag = sum(max(0, high[p] - stored.get(p, 0)) for p in high)
        delivered = generator.delivered_spans()
        messages = sum(high.values())
        spans_per_message = delivered / messages if messages else 300.0
        backlog = lag * spans_per_message
        if not paused and backlog > options.max_backlog_spans:
            generator.control.pause.set()
            paused = True
        elif paused and backlog < options.max_backlog_spans * RESUME_FRACTION:
            generator.control.pause.clear()
            paused = False
        if time.time() < next_sample:
            continue
        next_sample += 1.0
        cpu, rss = groups.sample()
        samples.append(Sample(time.time(), delivered, sum(stored.values()), lag, paused, cpu, rss))
        _progress(samples, started, window_start, spans_per_message)
    sys.stderr.write("\n")
    if profiler is not None:
        profiler.wait(timeout=30)
    return samples, (window_start, window_end)


def _progress(samples: list[Sample], started: float, window_start: float,
              spans_per_message: float) -> None:
    current = samples[-1]
    previous = samples[-2] if len(samples) > 1 else None
    rate = 0.0
    stored_rate = 0.0
    if previous is not None:
        elapsed = current.at - previous.at
        rate = (current.delivered_spans - previous.delivered_spans) / elapsed
        stored_rate = (current.stored_messages - previous.stored_messages) * spans_per_message / elapsed
    phase = "warm-up" if current.at < window_start else "window"
    sys.stderr.write(
        f"\r{phase} t={current.at - started:5.0f}s produced={rate:9,.0f}/s "
        f"stored~{stored_rate:9,.0f}/s lag={current.lag_messages:6d} msgs"
        f"{' paused' if current.paused else ''}   "
    )
    sys.stderr.flush()


def _wait_for_drain(watch: KafkaWatch, connection: psycopg.Connection, group: str,
                    topic: str) -> bool:
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        high = watch.high_watermarks()
        stored = stored_offsets(connection, group, topic)
        if all(stored.get(p, 0) >= offset for p, offset in high.items()):
            return True
        time.sleep(0.5)
    logger.error("workers did not drain topic=%s within %.0f s", topic, DRAIN_TIMEOUT_S)
    return False


def _build_report(
    options: LoadOptions, shape: TrafficShape, run_prefix: str, topic: str, dlq_topic: str,
    results: list[ProducerResult], samples: list[Sample], window: tuple[float, float],
    drained: bool, connection: psycopg.Connection, since_ns: int, watch: KafkaWatch,
) -> dict[str, Any]:
    produced_by_run: dict[str, int] = {}
    for result in results:
        produced_by_run.update(result.delivered_by_run)
    verdict = compare(produced_by_run, stored_counts(connection, run_prefix, since_ns))
    window_start, window_end = window
    pattern = run_prefix + "-%"
    stored_in_window, p50, p95, p99 = connection.execute(
        "SELECT count(*),"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM ingest_time - end_time)),"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM ingest_time - end_time)),"
        " percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM ingest_time - end_time))"
        " FROM spans WHERE run_id LIKE %s AND start_time >= to_timestamp(%s)"
        " AND ingest_time >= to_timestamp(%s) AND ingest_time < to_timestamp(%s)",
        (pattern, since_ns / 1e9, window_start, window_end),
    ).fetchone()
    per_second = connection.execute(
        "SELECT extract(epoch FROM time_bucket('1 second', ingest_time))::bigint, count(*),"
        " percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM ingest_time - end_time))"
        " FROM spans WHERE run_id LIKE %s AND start_time >= to_timestamp(%s) GROUP BY 1 ORDER BY 1",
        (pattern, since_ns / 1e9),
    ).fetchall()
    dlq_messages = sum(KafkaWatch(options.bootstrap, dlq_topic, 1).high_watermarks().values())
    produced_in_window = sum(
        spans for result in results for second, spans in result.delivered_per_second
        if window_start <= second < window_end
    )
    in_window = [s for s in samples if s.at >= window_start]
    cpu_names = sorted({name for s in in_window for name in s.cpu_percent})
    return {
        "label": options.label,
        "options": {key: (str(value) if isinstance(value, Path) else value)
                    for key, value in asdict(options).items() if key != "shape"},
        "shape": shape.summary(),
        "machine": {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1)},
        "topic": topic,
        "run_prefix": run_prefix,
        "window_s": options.duration_s,
        "offered_spans_per_s": produced_in_window / options.duration_s,
        "e2e_spans_per_s": stored_in_window / options.duration_s,
        "latency_s": {"p50": p50, "p95": p95, "p99": p99},
        "produced": verdict.produced,
        "stored_rows": verdict.stored_rows,
        "lost": verdict.lost,
        "duplicated": verdict.duplicated,
        "unexpected": verdict.unexpected,
        "dead_lettered_messages": dlq_messages,
        "drained": drained,
        "paused_samples": sum(1 for s in in_window if s.paused),
        "exact": verdict.exact and dlq_messages == 0 and drained,
        "producer_failed_messages": sum(r.failed_messages for r in results),
        "template_mib": round(sum(r.template_bytes for r in results) / 2**20, 1),
        "cpu_percent_mean": {
            name: round(sum(s.cpu_percent.get(name, 0.0) for s in in_window) / max(1, len(in_window)), 1)
            for name in cpu_names
        },
        "rss_mib_max": {
            name: round(max(s.rss_mb.get(name, 0.0) for s in samples), 1)
            for name in sorted({n for s in samples for n in s.rss_mb})
        },
        "timeline": {
            "stored_per_second": [(second, count) for second, count, _ in per_second],
            "p99_latency_per_second": [(second, p99_value) for second, _, p99_value in per_second],
            "lag_messages": [(round(s.at, 1), s.lag_messages) for s in samples],
            "window": [window_start, window_end],
        },
    }


def _write_report(report: dict[str, Any], report_dir: Path) -> None:
    (report_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (report_dir / "summary.md").write_text(_markdown(report))
    _chart(report, report_dir / "timeline.png")
    logger.info("wrote report dir=%s", report_dir)


def _markdown(report: dict[str, Any]) -> str:
    latency = report["latency_s"]

    def seconds(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = [
        f"# Load run {report['label']} ({report['run_prefix']})",
        "",
        f"Shape: {report['shape']['source']}; attributes p50 {report['shape']['attribute_bytes_p50']} B, "
        f"mean {report['shape']['attribute_bytes_mean']} B.",
        f"Machine: {report['machine']['cpus']} CPUs, {report['machine']['memory_gib']} GiB.",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| offered spans/s | {report['offered_spans_per_s']:,.0f} |",
        f"| e2e spans/s (stored, {report['window_s']:.0f} s window) | {report['e2e_spans_per_s']:,.0f} |",
        f"| latency p50 / p95 / p99 s | {seconds(latency['p50'])} / {seconds(latency['p95'])} / {seconds(latency['p99'])} |",
        f"| produced / stored rows | {report['produced']:,} / {report['stored_rows']:,} |",
        f"| lost / duplicated / unexpected | {report['lost']} / {report['duplicated']} / {report['unexpected']} |",
        f"| dead-lettered messages | {report['dead_lettered_messages']} |",
        "",
        "| process | mean CPU % (one core = 100) | max RSS MiB |",
        "| --- | --- | --- |",
    ]
    for name, cpu in report["cpu_percent_mean"].items():
        lines.append(f"| {name} | {cpu} | {report['rss_mib_max'].get(name, 'n/a')} |")
    if report.get("worker_stage_shares"):
        lines += ["", "| worker 0 stage (py-spy) | share of busy samples |", "| --- | --- |"]
        lines += [f"| {stage} | {share:.1%} |" for stage, share in report["worker_stage_shares"].items()]
    lines.append("")
    lines.append("RSS sums every process of a group, so PostgreSQL's shared buffers count more than once.")
    return "\n".join(lines) + "\n"


def _chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timeline = report["timeline"]
    origin = timeline["window"][0] - report["options"]["warmup_s"]
    figure, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    stored = timeline["stored_per_second"]
    axes[0].plot([s - origin for s, _ in stored], [c for _, c in stored])
    axes[0].set_ylabel("spans stored/s")
    lag = timeline["lag_messages"]
    axes[1].plot([t - origin for t, _ in lag], [m for _, m in lag])
    axes[1].set_ylabel("lag (messages)")
    latency = timeline["p99_latency_per_second"]
    axes[2].plot([s - origin for s, _ in latency], [v for _, v in latency])
    axes[2].set_ylabel("p99 latency s")
    axes[2].set_xlabel("seconds since producing started")
    for axis in axes:
        for edge in timeline["window"]:
            axis.axvline(edge - origin, color="grey", linestyle=":")
    figure.suptitle(f"{report['label']}: {report['e2e_spans_per_s']:,.0f} spans/s stored")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def parse_args(argv: list[str] | None = None) -> LoadOptions:
    defaults = Settings.from_env()
    parser = argparse.ArgumentParser(description="Offer span load to the pipeline and measure it.")
    parser.add_argument("--bootstrap", default=defaults.kafka_bootstrap, help="Kafka bootstrap servers")
    parser.add_argument("--dsn", default=None, help="PostgreSQL DSN (default: SPANLINE_DATABASE_DSN)")
    parser.add_argument("--s3-endpoint", default=defaults.s3_endpoint, help="S3 host:port for the workers")
    parser.add_argument("--rate", default="max", help="spans/s offered, or max (default)")
    parser.add_argument("--duration", type=float, default=60.0, help="measured window in seconds")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds produced before the window")
    parser.add_argument("--workers", type=int, default=1, help="span worker processes to start")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the load topic (min 4)")
    parser.add_argument("--producers", type=int, default=1, help="producer processes")
    parser.add_argument("--compression", default="zstd", choices=["zstd", "lz4", "none"])
    parser.add_argument("--linger-ms", type=int, default=50, help="producer linger.ms")
    parser.add_argument("--max-backlog-spans", type=int, default=50_000,
                        help="pause producing while the backlog exceeds this many spans")
    parser.add_argument("--report-dir", type=Path, default=Path("artifacts/load"))
    parser.add_argument("--external-workers", action="store_true",
                        help="start no workers; --topic must name the topic they consume")
    parser.add_argument("--topic", default=None, help="existing topic to produce to (with --external-workers)")
    parser.add_argument("--consumer-group", default=None,
                        help="group of the external workers, for lag (default: the harness's own)")
    parser.add_argument("--profile", action="store_true",
                        help="sample worker 0 with py-spy and report time per stage")
    parser.add_argument("--keep-data", action="store_true", help="keep rows and topics afterwards")
    args = parser.parse_args(argv)
    if args.partitions < 4:
        parser.error(f"--partitions {args.partitions} is below 4; use 4 or more")
    if args.external_workers and not args.topic:
        parser.error("--external-workers needs --topic, the topic the external workers consume")
    rate = 0.0 if args.rate == "max" else float(args.rate)
    return LoadOptions(
        bootstrap=args.bootstrap,
        dsn=args.dsn or defaults.database_dsn.reveal(),
        s3_endpoint=args.s3_endpoint,
        rate=rate, duration_s=args.duration, warmup_s=args.warmup, workers=args.workers,
        partitions=args.partitions, producers=args.producers, report_dir=args.report_dir,
        external_workers=args.external_workers, topic=args.topic, compression=args.compression,
        linger_ms=args.linger_ms, max_backlog_spans=args.max_backlog_spans, keep_data=args.keep_data,
        consumer_group=args.consumer_group, profile=args.profile,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    report = run_load(parse_args(argv))
    print(json.dumps({key: report[key] for key in (
        "e2e_spans_per_s", "offered_spans_per_s", "latency_s", "lost", "duplicated",
        "dead_lettered_messages", "exact")}, indent=2))
    return 0 if report["exact"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
