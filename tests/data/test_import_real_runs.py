"""Every recorded real run parses; skipped when the shared data folder is absent."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from pipeline.importers import expand_paths, import_files, load_file

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("SPANLINE_SHARED_DATA") or REPO_ROOT / ".." / "shared" / "data")
RUNS_DIR = DATA_DIR / "runs"
LANGFUSE_DIR = RUNS_DIR / "langfuse-exports"
AGENTLAB_DIR = RUNS_DIR / "agentlab-browser"

pytestmark = pytest.mark.skipif(
    not RUNS_DIR.is_dir(), reason=f"real run data not found at {RUNS_DIR}; set SPANLINE_SHARED_DATA"
)

RUN_FILES = sorted(expand_paths([RUNS_DIR])) if RUNS_DIR.is_dir() else []


@pytest.mark.parametrize("path", RUN_FILES, ids=lambda path: path.name)
def test_real_file_parses(path: Path) -> None:
    runs = load_file(path)
    assert runs
    for run in runs:
        assert run.run_id
        assert run.agent
        assert run.spans
        for span in run.spans:
            assert span.end_ns >= span.start_ns
            assert span.step >= 1
            json.dumps(span.attributes)


@pytest.mark.parametrize("path", RUN_FILES, ids=lambda path: path.name)
def test_real_file_span_count_matches_source(path: Path) -> None:
    document = json.loads(path.read_text())
    runs = load_file(path)
    spans = sum(len(run.spans) for run in runs)
    if "observations" in document:
        # One span per observation, plus the root made from the trace where none was recorded.
        made_roots = sum(
            1 for run in runs for span in run.spans
            if (span.attributes or {}).get("spanline.root_from") == "langfuse.trace"
        )
        assert spans == len(document["observations"]) + made_roots
    else:
        actions = sum(1 for step in document["steps"] if step["state"].get("action"))
        assert spans == 1 + 2 * actions


LANGFUSE_FILES = [path for path in RUN_FILES if path.parent == LANGFUSE_DIR]


@pytest.mark.parametrize("path", LANGFUSE_FILES, ids=lambda path: path.name)
def test_generations_become_priced_llm_spans(path: Path) -> None:
    document = json.loads(path.read_text())
    spans = {span.span_id: span for run in load_file(path) for span in run.spans}
    for observation in document["observations"]:
        if observation["type"] != "GENERATION" or not observation.get("model"):
            continue
        span = spans[observation["id"]]
        assert span.kind == "llm"
        assert span.model
        assert span.provider
        if observation.get("usageDetails"):
            assert span.usage is not None, observation["id"]
            assert not span.usage.is_unknown()


def test_langfuse_usage_matches_input_output_counts() -> None:
    # Langfuse's own inputUsage/outputUsage count every input and output class together.
    checked = 0
    for path in LANGFUSE_FILES:
        document = json.loads(path.read_text())
        spans = {span.span_id: span for run in load_file(path) for span in run.spans}
        for observation in document["observations"]:
            span = spans[observation["id"]]
            if span.usage is None or not observation.get("outputUsage"):
                continue
            usage = span.usage
            input_total = sum(v or 0 for v in (usage.input_tokens, usage.cache_read_tokens, usage.cache_write_tokens,
                                                usage.cache_write_1h_tokens, usage.audio_input_tokens))
            output_total = sum(v or 0 for v in (usage.output_tokens, usage.reasoning_tokens, usage.audio_output_tokens))
            assert input_total == observation["inputUsage"], observation["id"]
            assert output_total == observation["outputUsage"], observation["id"]
            checked += 1
    assert checked >= 20


def test_real_agentlab_episodes() -> None:
    runs = [run for path in sorted(AGENTLAB_DIR.glob("*.json")) for run in load_file(path)]
    assert len(runs) == 2
    for run in runs:
        kinds = Counter(span.kind for span in run.spans)
        assert kinds["agent"] == 1
        assert kinds["llm"] == kinds["browser"]
        for span in run.spans:
            if span.kind == "llm":
                assert span.model == "gpt-4o-mini"
                assert span.usage is not None
                assert span.usage.input_tokens > 0
            if span.kind == "browser":
                assert span.tool_name == "click"
                assert json.loads(span.tool_args)["bid"]


def test_import_all_real_runs_counts() -> None:
    class CountingRun:
        def __init__(self) -> None:
            self.spans = 0

        def record_span(self, *args, **kwargs) -> str:
            self.spans += 1
            return kwargs["span_id"]

    class CountingTracer:
        def __init__(self) -> None:
            self.recorded: list[CountingRun] = []

        def run(self, agent: str, run_id: str | None = None, *, root_span: bool = True):
            from contextlib import nullcontext

            recorded = CountingRun()
            self.recorded.append(recorded)
            return nullcontext(recorded)

    tracer = CountingTracer()
    summary = import_files([RUNS_DIR], tracer)
    assert not summary.failed_files
    assert len(summary.published.run_ids) == len(set(summary.published.run_ids))
    assert summary.published.spans == sum(run.spans for run in tracer.recorded)
    assert summary.published.frames == 0


@pytest.mark.parametrize("path", RUN_FILES, ids=lambda path: path.name)
def test_real_run_has_root_agent_span(path: Path) -> None:
    for run in load_file(path):
        roots = [span for span in run.spans if span.kind == "agent" and not span.parent_span_id]
        assert len(roots) >= 1, f"run {run.run_id} has no root agent span, so it could never finish"
