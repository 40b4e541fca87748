"""Format detection, directory expansion, publishing and the import command on fixtures."""

from __future__ import annotations

import argparse
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from pipeline.importers import cli as import_cli
from pipeline.importers import detect_format, expand_paths, import_files, import_paths, load_file, publish
from pipeline.importers.model import ImportedFrame, ImportedRun, ImportedSpan, ImportFormatError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "import"
LANGFUSE_FIXTURE = FIXTURES / "toyframework-2025-03-01.trace.json"
AGENTLAB_FIXTURE = FIXTURES / "toy-episode.steps.json"


class RecordingRun:
    def __init__(self) -> None:
        self.spans: list[tuple[tuple, dict]] = []
        self.frames: list[tuple[bytes, dict]] = []

    def record_span(self, *args: Any, **kwargs: Any) -> str:
        self.spans.append((args, kwargs))
        return kwargs.get("span_id") or "generated"

    def record_frame(self, data: bytes, **kwargs: Any) -> str:
        self.frames.append((data, kwargs))
        return "sha"


class RecordingTracer:
    """Stands in for pipeline.sdk.Tracer: records the calls an importer makes."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, str | None, RecordingRun]] = []
        self.root_span_flags: list[bool] = []

    @contextmanager
    def run(self, agent: str, run_id: str | None = None, *, root_span: bool = True) -> Iterator[RecordingRun]:
        recorded = RecordingRun()
        self.root_span_flags.append(root_span)
        self.runs.append((agent, run_id, recorded))
        yield recorded


def test_detect_format_by_content() -> None:
    assert detect_format(json.loads(LANGFUSE_FIXTURE.read_text())) == "langfuse"
    assert detect_format(json.loads(AGENTLAB_FIXTURE.read_text())) == "agentlab"
    assert detect_format({"resourceSpans": []}) == "otlp"
    with pytest.raises(ImportFormatError, match="unknown file content"):
        detect_format({"hello": "world"})


def test_otlp_format_rejects_langfuse_export() -> None:
    with pytest.raises(ImportFormatError, match="not an OTLP/JSON export"):
        load_file(LANGFUSE_FIXTURE, "otlp")


def test_unknown_format_name_raises() -> None:
    with pytest.raises(ImportFormatError, match="unknown format 'csv'"):
        load_file(LANGFUSE_FIXTURE, "csv")


def test_wrong_forced_format_names_file() -> None:
    with pytest.raises(ImportFormatError, match=f"{AGENTLAB_FIXTURE.name}: not a Langfuse export"):
        load_file(AGENTLAB_FIXTURE, "langfuse")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (FIXTURES / "bad" / "not-json.trace.json", "invalid JSON at line 1"),
        (FIXTURES / "bad" / "unknown-shape.json", "unknown file content"),
        (FIXTURES / "missing.json", "file not found"),
    ],
)
def test_bad_files_raise_naming_the_file(path: Path, message: str) -> None:
    with pytest.raises(ImportFormatError, match=message) as raised:
        load_file(path)
    assert path.name in str(raised.value)


def test_expand_paths_lists_directory_json_files() -> None:
    files = expand_paths([FIXTURES])
    names = [path.name for path in files]
    assert "toy-episode.steps.json" in names
    assert "toyframework-2025-03-01.trace.json" in names
    assert "unknown-shape.json" in names
    assert files == sorted(files)


def test_publish_calls_record_span_with_every_field() -> None:
    span = ImportedSpan(kind="llm", name="n", start_ns=1, end_ns=2, step=3, span_id="s", model="m")
    frame = ImportedFrame(data=b"png", step=3, content_type="image/png", span_id="s", width=4, height=5)
    tracer = RecordingTracer()
    result = publish([ImportedRun(run_id="r", agent="a", spans=[span], frames=[frame])], tracer)
    assert result.run_ids == ["r"]
    assert result.spans == 1
    assert result.frames == 1
    agent, run_id, recorded = tracer.runs[0]
    assert tracer.root_span_flags == [False], "a recording must not gain a root span it never had"
    assert (agent, run_id) == ("a", "r")
    args, kwargs = recorded.spans[0]
    assert args == ("llm", "n", 1, 2)
    assert kwargs["step"] == 3
    assert kwargs["model"] == "m"
    assert kwargs["span_id"] == "s"
    data, frame_kwargs = recorded.frames[0]
    assert data == b"png"
    assert frame_kwargs == {
        "step": 3, "content_type": "image/png", "kind": "viewport", "capture_ns": None,
        "span_id": "s", "width": 4, "height": 5,
    }


def test_import_files_continues_past_bad_files() -> None:
    tracer = RecordingTracer()
    outcomes = []
    summary = import_files([FIXTURES], tracer, on_file=outcomes.append)
    assert len(outcomes) == 4
    assert len(summary.failed_files) == 2
    assert len(summary.published.run_ids) == 2
    assert summary.published.spans == 7 + 7
    assert summary.published.frames == 0


def test_import_files_skips_repeated_run_ids() -> None:
    tracer = RecordingTracer()
    summary = import_files([LANGFUSE_FIXTURE, LANGFUSE_FIXTURE], tracer)
    assert summary.published.run_ids == ["0123456789abcdef0123456789abcdef"]
    assert summary.files[1].skipped_run_ids == ("0123456789abcdef0123456789abcdef",)
    assert len(tracer.runs) == 1


def test_import_command_exit_code_and_output(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    class ClosingTracer(RecordingTracer):
        def __init__(self, settings: Any = None) -> None:
            super().__init__()

        def close(self, timeout_s: float = 30) -> dict:
            return {"delivered": 1}

    import pipeline.sdk

    monkeypatch.setattr(pipeline.sdk, "Tracer", ClosingTracer, raising=False)
    parser = argparse.ArgumentParser()
    import_cli.configure_parser(parser)

    args = parser.parse_args([str(LANGFUSE_FIXTURE), str(AGENTLAB_FIXTURE)])
    assert args.handler(args) == 0
    output = capsys.readouterr().out
    assert f"{LANGFUSE_FIXTURE}: 1 runs, 7 spans, 0 frames" in output
    assert "imported 2 runs, 14 spans, 0 frames from 2 files; 0 files failed" in output

    args = parser.parse_args([str(FIXTURES)])
    assert args.handler(args) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.err
    assert "not-json.trace.json" in captured.err
    assert "2 files failed" in captured.out


def test_import_paths_reports_lines() -> None:
    lines: list[str] = []
    summary = import_paths([FIXTURES], RecordingTracer(), progress=lines.append)
    assert len(lines) == 4
    assert sum(line.startswith("FAILED") for line in lines) == 2
    assert summary.run_ids == summary.published.run_ids
    assert summary.spans == 14
    assert summary.frames == 0


def test_unconfirmed_records_count_spans_and_frames_in_flight() -> None:
    from pipeline.importers.cli import unconfirmed_records
    from pipeline.sdk import TracerStats

    stats = TracerStats(
        spans_in_flight=7, frames_sent=5, frames_delivered=2,
        frames_dropped_by_reason={"delivery_failed": 1},
    )
    assert unconfirmed_records(stats) == 7 + 2
    assert unconfirmed_records(TracerStats(spans_sent=3, spans_delivered=3)) == 0
