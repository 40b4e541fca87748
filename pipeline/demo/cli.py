"""`spanline demo`: real recorded runs and a live browser run through the whole pipeline.

Steps: start a span worker and a frame worker, import every run under the shared data folder,
record a browser run in headless Chromium, wait until TimescaleDB has every published span and
frame, print a per-run summary, stop the workers. The stack itself stays up.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import (
    FRAME_WORKER_WEB_PORT,
    RUNS_WORKER_WEB_PORT,
    WORKER_WEB_PORT,
    Settings,
    shared_data_dir,
)

log = logging.getLogger(__name__)

STORE_TIMEOUT_S = 180.0


@dataclass
class Published:
    run_ids: list[str] = field(default_factory=list)
    spans: int = 0
    frames: int = 0


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, default=None,
        help="folder of recorded runs (default: SPANLINE_SHARED_DATA or ../shared/data)",
    )
    parser.add_argument(
        "--skip-browser", action="store_true", help="do not record the headless Chromium run"
    )
    parser.add_argument(
        "--timeout", type=float, default=STORE_TIMEOUT_S,
        help=f"seconds to wait for every span to be stored (default {STORE_TIMEOUT_S:.0f})",
    )
    parser.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from pipeline.demo.summary import (
        count_run_state_spans,
        count_stored,
        format_run_headers,
        format_summary_table,
        read_run_summaries,
    )
    from pipeline.sdk import Tracer
    from pipeline.workers.process import WorkerProcess

    settings = Settings.from_env()
    logs_dir = settings.state_dir / "logs"
    workers = [
        WorkerProcess("spans", WORKER_WEB_PORT, logs_dir / "demo-span-worker.log"),
        WorkerProcess("frames", FRAME_WORKER_WEB_PORT, logs_dir / "demo-frame-worker.log"),
        WorkerProcess("runs", RUNS_WORKER_WEB_PORT, logs_dir / "demo-runs-worker.log"),
    ]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready()
            _say(f"{worker.role} worker ready (pid {worker.pid}, log {worker.log_path})")

        published = Published()
        tracer = Tracer(settings)
        try:
            _import_recorded_runs(args.data or shared_data_dir(), tracer, published)
            if not args.skip_browser:
                _record_browser_run(tracer, published)
        finally:
            stats = tracer.close()
        _say(f"published {published.spans} spans and {published.frames} frames "
             f"of {len(published.run_ids)} runs; SDK stats: {stats}")

        dsn = settings.database_dsn.reveal()
        if not _wait_until_stored(dsn, published, args.timeout, count_stored,
                                  count_run_state_spans):
            return 1
        print()
        print(format_summary_table(read_run_summaries(dsn, published.run_ids)))
        print()
        print("Run metrics from the runs worker (p95 step latency over the last 100 steps, replans):")
        print(format_run_headers(dsn, published.run_ids))
        frames_ok = _verify_frames(settings, published)
        _say("replay a run in the browser: export SPANLINE_REPLAY_SECRET=<16+ characters>, run "
             "`spanline replay serve --print-links` and open the runs-list link it prints")
        return 0 if frames_ok else 1
    finally:
        for worker in workers:
            worker.stop()


def _import_recorded_runs(data_dir: Path, tracer, published: Published) -> None:  # noqa: ANN001
    from pipeline.importers import import_paths

    runs_dir = data_dir / "runs"
    if not runs_dir.is_dir():
        _say(f"skipped the recorded runs: {runs_dir} does not exist "
             "(set SPANLINE_SHARED_DATA to the folder that holds runs/)")
        return
    files = sorted(path for path in runs_dir.rglob("*.json") if path.is_file())
    _say(f"importing {len(files)} recorded runs from {runs_dir}")
    # Each demo publishes the recordings as new runs, so a second demo does not add their spans
    # again to the runs the first one stored.
    suffix = f"-demo{int(time.time()):x}"
    result = import_paths(files, tracer, progress=_say, run_id_suffix=suffix)
    published.run_ids.extend(result.run_ids)
    published.spans += result.spans
    published.frames += result.frames
    if result.failed_files:
        _say(f"{len(result.failed_files)} files could not be imported: {result.failed_files}")


def _record_browser_run(tracer, published: Published) -> None:  # noqa: ANN001
    from pipeline.demo.browser_run import record_browser_run

    _say("recording a browser run in headless Chromium")
    run_id, spans, frames = record_browser_run(tracer)
    published.run_ids.append(run_id)
    published.spans += spans
    published.frames += frames
    _say(f"browser run {run_id}: {spans} spans, {frames} frames")


def _wait_until_stored(
    dsn: str, published: Published, timeout_s: float, count_stored, count_run_state_spans  # noqa: ANN001
) -> bool:
    deadline = time.monotonic() + timeout_s
    # On a terminal the progress line rewrites itself; in a log it is printed only when it changes.
    interactive = sys.stdout.isatty()
    last_line = ""
    while True:
        spans, frames = count_stored(dsn, published.run_ids)
        run_spans = count_run_state_spans(dsn, published.run_ids)
        line = (
            f"stored {spans}/{published.spans} spans, {frames}/{published.frames} frames; "
            f"run metrics cover {run_spans}/{published.spans} spans"
        )
        if interactive:
            sys.stdout.write("\r" + line)
            sys.stdout.flush()
        elif line != last_line:
            print(line, flush=True)
        last_line = line
        if (spans >= published.spans and frames >= published.frames
                and run_spans >= published.spans):
            if interactive:
                sys.stdout.write("\n")
            return True
        if time.monotonic() > deadline:
            if interactive:
                sys.stdout.write("\n")
            _say(f"timed out after {timeout_s:.0f} s waiting for the workers to store everything "
                 f"({line}); read the worker logs named above")
            return False
        time.sleep(0.5)


def _verify_frames(settings: Settings, published: Published) -> bool:
    """Check that every stored frame of the demo runs reads back byte-identical from S3."""
    from pipeline.replay.verify import verify_run

    print()
    all_ok = True
    for run_id in published.run_ids:
        report = verify_run(settings, run_id)
        if report.expected == 0:
            continue
        all_ok = all_ok and report.ok
        state = "OK" if report.ok else "FAILED"
        _say(f"replay check {state} run {run_id}: {report.identical}/{report.expected} frames "
             f"present and identical, {len(report.missing)} missing, "
             f"{len(report.mismatched)} mismatched")
    return all_ok


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)
