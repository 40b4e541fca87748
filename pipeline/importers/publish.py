"""Publishing imported runs through the SDK, file by file."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.importers.model import ImportedRun, ImportFormatError
from pipeline.importers.registry import AUTO, expand_paths, load_file

logger = logging.getLogger(__name__)

# Tracer drop reasons decided while record_span runs. Delivery failures and close timeouts happen
# later and are reported by `Tracer.close()`.
_SYNCHRONOUS_SPAN_DROPS = ("invalid_span", "buffer_full", "tracer_closed")


@dataclass
class PublishResult:
    """Counts of records the SDK accepted and rejected, and the run ids in publishing order."""

    run_ids: list[str] = field(default_factory=list)
    spans: int = 0
    frames: int = 0
    spans_rejected: int = 0
    frames_rejected: int = 0

    def add(self, other: "PublishResult") -> None:
        self.run_ids.extend(other.run_ids)
        self.spans += other.spans
        self.frames += other.frames
        self.spans_rejected += other.spans_rejected
        self.frames_rejected += other.frames_rejected


@dataclass(frozen=True)
class FileOutcome:
    """The result of importing one file: counts on success, the reason on failure."""

    path: Path
    result: PublishResult
    error: str | None = None
    skipped_run_ids: tuple[str, ...] = ()


@dataclass
class ImportSummary:
    """Totals of one import over many files, for the CLI's last line and the demo's wait."""

    published: PublishResult = field(default_factory=PublishResult)
    files: list[FileOutcome] = field(default_factory=list)

    @property
    def failed_files(self) -> list[FileOutcome]:
        return [outcome for outcome in self.files if outcome.error is not None]

    @property
    def run_ids(self) -> list[str]:
        return self.published.run_ids

    @property
    def spans(self) -> int:
        return self.published.spans

    @property
    def frames(self) -> int:
        return self.published.frames


def publish(runs: Iterable[ImportedRun], tracer: Any, *, run_id_suffix: str = "") -> PublishResult:
    """Record every span and frame of `runs` through `tracer` (a `pipeline.sdk.Tracer`).

    `run_id_suffix` is appended to every run id, so publishing the same recording again makes
    new runs instead of adding its spans a second time to the runs already stored.

    The spans are only handed to the tracer's producer; call `tracer.flush()` or
    `tracer.close()` to wait until Kafka has them.
    """
    result = PublishResult()
    rejected_before = _rejected_counts(tracer)
    for run in runs:
        run_id = run.run_id + run_id_suffix
        # A recording brings its own root span (or has none); the SDK adds no span of its own.
        with tracer.run(run.agent, run_id=run_id, root_span=False) as recorded_run:
            for span in run.spans:
                recorded_run.record_span(
                    span.kind, span.name, span.start_ns, span.end_ns, **span.record_span_kwargs()
                )
            for frame in run.frames:
                recorded_run.record_frame(
                    frame.data,
                    step=frame.step,
                    content_type=frame.content_type,
                    kind=frame.kind,
                    capture_ns=frame.capture_ns,
                    span_id=frame.span_id,
                    width=frame.width,
                    height=frame.height,
                )
        result.run_ids.append(run_id)
        result.spans += len(run.spans)
        result.frames += len(run.frames)
        logger.debug("published run_id=%s agent=%s spans=%d frames=%d", run_id, run.agent, len(run.spans), len(run.frames))

    # The SDK drops an invalid span or frame with a log line instead of raising. Counting the
    # drops keeps `spans` and `frames` equal to what can reach storage, so a caller waiting for
    # them does not wait forever.
    rejected_after = _rejected_counts(tracer)
    result.spans_rejected = rejected_after[0] - rejected_before[0]
    result.frames_rejected = rejected_after[1] - rejected_before[1]
    result.spans -= result.spans_rejected
    result.frames -= result.frames_rejected
    if result.spans_rejected or result.frames_rejected:
        logger.error(
            "the SDK rejected imported records spans_rejected=%d frames_rejected=%d run_ids=%s",
            result.spans_rejected,
            result.frames_rejected,
            ",".join(result.run_ids),
        )
    return result


def _rejected_counts(tracer: Any) -> tuple[int, int]:
    stats = getattr(tracer, "stats", None)
    if stats is None:
        return 0, 0
    spans = getattr(stats, "spans_dropped_by_reason", {})
    frames = getattr(stats, "frames_dropped_by_reason", {})
    return (
        sum(spans.get(reason, 0) for reason in _SYNCHRONOUS_SPAN_DROPS),
        sum(count for reason, count in frames.items() if reason != "delivery_failed"),
    )


def import_files(
    paths: Iterable[str | Path],
    tracer: Any,
    *,
    format_name: str = AUTO,
    agent: str | None = None,
    on_file: Callable[[FileOutcome], None] | None = None,
    run_id_suffix: str = "",
) -> ImportSummary:
    """Parse and publish every file under `paths`, continuing past files that fail.

    A run id already published earlier in the same call is skipped, because two exports of one
    trace would otherwise store every span twice. `on_file` is called after each file.
    """
    summary = ImportSummary()
    seen_run_ids: set[str] = set()
    for path in expand_paths(paths):
        try:
            runs = load_file(path, format_name, agent=agent)
        except ImportFormatError as error:
            outcome = FileOutcome(path, PublishResult(), error=str(error))
            logger.error("import failed file=%s error=%s", path, error)
        else:
            fresh = [run for run in runs if run.run_id not in seen_run_ids]
            skipped = tuple(run.run_id for run in runs if run.run_id in seen_run_ids)
            for run_id in skipped:
                logger.warning("run already imported in this call, skipped run_id=%s file=%s", run_id, path)
            seen_run_ids.update(run.run_id for run in fresh)
            outcome = FileOutcome(
                path, publish(fresh, tracer, run_id_suffix=run_id_suffix), skipped_run_ids=skipped
            )
            summary.published.add(outcome.result)
        summary.files.append(outcome)
        if on_file is not None:
            on_file(outcome)
    return summary


def import_paths(
    paths: Iterable[str | Path],
    tracer: Any,
    *,
    format_name: str = AUTO,
    agent: str | None = None,
    progress: Callable[[str], None] | None = None,
    run_id_suffix: str = "",
) -> ImportSummary:
    """Run `import_files` and pass one printable line per file to `progress`."""
    on_file = None if progress is None else (lambda outcome: progress(format_outcome(outcome)))
    return import_files(
        paths, tracer, format_name=format_name, agent=agent, on_file=on_file,
        run_id_suffix=run_id_suffix,
    )


def format_outcome(outcome: FileOutcome) -> str:
    """Return one line for an imported file (path and counts) or a failed one (FAILED and reason)."""
    if outcome.error is not None:
        return f"FAILED {outcome.error}"
    result = outcome.result
    line = f"{outcome.path}: {len(result.run_ids)} runs, {result.spans} spans, {result.frames} frames"
    if result.spans_rejected or result.frames_rejected:
        line += f" ({result.spans_rejected} spans and {result.frames_rejected} frames rejected by the SDK)"
    if outcome.skipped_run_ids:
        line += f" (skipped {len(outcome.skipped_run_ids)} runs already imported: {', '.join(outcome.skipped_run_ids)})"
    return line
