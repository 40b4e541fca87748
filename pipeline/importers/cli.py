"""`spanline import`: publish recorded agent runs from files through the SDK."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from pipeline.importers.publish import FileOutcome, ImportSummary, format_outcome, import_files
from pipeline.importers.registry import AUTO, FORMATS

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 30.0


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the import arguments to `parser` and set its handler."""
    parser.add_argument(
        "--format",
        dest="format_name",
        choices=[AUTO, *FORMATS],
        default=AUTO,
        help="input format; auto detects it from each file's content (default: auto)",
    )
    parser.add_argument(
        "--agent",
        default=None,
        help="agent name for every imported run (default: taken from each file)",
    )
    parser.add_argument(
        "--run-id-suffix",
        default="",
        help="text appended to every run id, to publish a recording again as new runs "
        "(default: none, so ids stay those of the recording)",
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="files to import; a directory means every *.json file under it",
    )
    parser.set_defaults(handler=run_import)


def run_import(args: argparse.Namespace) -> int:
    """Import the files named in `args`. Return 1 when a file failed or a record was dropped, else 0."""
    from pipeline.config import Settings
    from pipeline.sdk import Tracer

    settings = Settings.from_env()
    tracer = Tracer(settings)
    try:
        summary = import_files(args.paths, tracer, format_name=args.format_name, agent=args.agent, on_file=print_outcome, run_id_suffix=args.run_id_suffix)
    finally:
        stats = tracer.close(timeout_s=CLOSE_TIMEOUT_S)
    logger.info("tracer closed stats=%s", stats)
    print_summary(summary, stats)
    undelivered = getattr(stats, "spans_dropped", 0) + getattr(stats, "frames_dropped", 0)
    unconfirmed = unconfirmed_records(stats)
    if unconfirmed:
        print(
            f"error: Kafka at {settings.kafka_bootstrap} did not confirm {unconfirmed} spans and frames "
            f"within {CLOSE_TIMEOUT_S:.0f} s; check SPANLINE_KAFKA_BOOTSTRAP and that the broker is up",
            file=sys.stderr, flush=True,
        )
    return 1 if summary.failed_files or undelivered or unconfirmed else 0


def unconfirmed_records(stats: Any) -> int:
    """Return the spans and frames handed to Kafka whose delivery was never confirmed nor failed."""
    spans = getattr(stats, "spans_in_flight", 0)
    frames_failed = getattr(stats, "frames_dropped_by_reason", {}).get("delivery_failed", 0)
    frames = getattr(stats, "frames_sent", 0) - getattr(stats, "frames_delivered", 0) - frames_failed
    return spans + max(frames, 0)


def print_outcome(outcome: FileOutcome) -> None:
    """Print one line for an imported file, or for a failed one on stderr."""
    stream = sys.stderr if outcome.error is not None else sys.stdout
    print(format_outcome(outcome), file=stream, flush=True)


def print_summary(summary: ImportSummary, close_stats: Any = None) -> None:
    """Print the final line: totals and the number of failed files."""
    published = summary.published
    failed = len(summary.failed_files)
    print(
        f"imported {len(published.run_ids)} runs, {published.spans} spans, {published.frames} frames "
        f"from {len(summary.files) - failed} files; {failed} files failed",
        flush=True,
    )
    if close_stats is not None:
        print(f"tracer: {close_stats}", flush=True)
