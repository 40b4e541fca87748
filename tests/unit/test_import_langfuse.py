"""Langfuse export parsing on a hand-written export shaped like real ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.importers import langfuse
from pipeline.importers.model import ImportedSpan, ImportFormatError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "import" / "toyframework-2025-03-01.trace.json"
TRACE_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def document() -> dict:
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def spans(document: dict) -> dict[str, ImportedSpan]:
    runs = langfuse.parse(document, source=FIXTURE.name)
    assert len(runs) == 1
    return {span.span_id: span for span in runs[0].spans}


def test_run_id_is_trace_id(document: dict) -> None:
    run = langfuse.parse(document, source=FIXTURE.name)[0]
    assert run.run_id == TRACE_ID
    assert run.agent == "toyframework"
    assert len(run.spans) == len(document["observations"])


def test_agent_override_wins(document: dict) -> None:
    assert langfuse.parse(document, source=FIXTURE.name, agent="mine")[0].agent == "mine"


def test_agent_falls_back_to_trace_name(document: dict) -> None:
    assert langfuse.parse(document, source="export.json")[0].agent == "toy trace"


@pytest.mark.parametrize(
    ("file_name", "agent"),
    [
        ("agno-2025-06-11.trace.json", "agno"),
        ("langgraph-python-2025-08-22.trace.json", "langgraph-python"),
        ("export.json", None),
    ],
)
def test_agent_from_file_name(file_name: str, agent: str | None) -> None:
    assert langfuse.agent_from_file_name(file_name) == agent


def test_timestamps_become_utc_ns(spans: dict[str, ImportedSpan]) -> None:
    generation = spans["a000000000000002"]
    assert generation.start_ns == 1_740_823_200_100_000_001
    assert generation.end_ns == 1_740_823_201_250_000_000
    # The tool's times carry a +02:00 offset and must land on the same UTC clock.
    tool = spans["a000000000000003"]
    assert tool.start_ns == 1_740_823_201_300_000_000


@pytest.mark.parametrize(
    ("observation_id", "kind"),
    [
        ("a000000000000001", "agent"),
        ("a000000000000002", "llm"),
        ("a000000000000003", "tool"),
        ("a000000000000004", "tool"),
        ("a000000000000005", "agent"),
        ("a000000000000006", "llm"),
        ("a000000000000007", "llm"),
    ],
)
def test_kind_mapping(spans: dict[str, ImportedSpan], observation_id: str, kind: str) -> None:
    assert spans[observation_id].kind == kind


@pytest.mark.parametrize(
    ("observation_type", "attributes", "is_root", "kind"),
    [
        ("GENERATION", {}, False, "llm"),
        ("EMBEDDING", {}, False, "llm"),
        ("TOOL", {}, False, "tool"),
        ("RETRIEVER", {}, False, "tool"),
        ("AGENT", {}, False, "agent"),
        ("SPAN", {}, True, "agent"),
        ("SPAN", {}, False, "agent"),
        ("CHAIN", {}, False, "agent"),
        ("EVENT", {}, False, "agent"),
        ("SPAN", {"gen_ai.operation.name": "plan"}, False, "plan"),
        ("SPAN", {"openinference.span.kind": "TOOL"}, False, "tool"),
        ("SPAN", {"openinference.span.kind": "AGENT", "tool.name": "x"}, False, "agent"),
        ("SPAN", {"openinference.span.kind": "CHAIN"}, False, "agent"),
        ("SPAN", {"gen_ai.operation.name": "execute_tool"}, False, "tool"),
        ("SPAN", {"gen_ai.tool.name": "lookup"}, False, "tool"),
        ("SPAN", {"gen_ai.operation.name": "invoke_agent"}, False, "agent"),
    ],
)
def test_map_kind_rules(observation_type: str, attributes: dict, is_root: bool, kind: str) -> None:
    assert langfuse.map_kind(observation_type, attributes, is_root=is_root) == kind


def test_steps_follow_actions(spans: dict[str, ImportedSpan]) -> None:
    steps = {observation_id: span.step for observation_id, span in spans.items()}
    assert steps == {
        "a000000000000001": 1,
        "a000000000000002": 1,
        "a000000000000003": 2,
        "a000000000000004": 3,
        "a000000000000005": 4,
        "a000000000000006": 4,
        "a000000000000007": 5,
    }


def test_parent_and_trace_ids(spans: dict[str, ImportedSpan]) -> None:
    assert spans["a000000000000001"].parent_span_id == ""
    assert spans["a000000000000006"].parent_span_id == "a000000000000005"
    assert {span.trace_id for span in spans.values()} == {TRACE_ID}


def test_usage_from_usage_details_text(spans: dict[str, ImportedSpan]) -> None:
    usage = spans["a000000000000002"].usage
    assert usage is not None
    assert usage.source == "langfuse"
    assert usage.input_tokens == 120
    assert usage.cache_read_tokens == 20
    assert usage.output_tokens == 30


def test_usage_prefers_richer_gen_ai_attributes(spans: dict[str, ImportedSpan]) -> None:
    usage = spans["a000000000000006"].usage
    assert usage is not None
    assert usage.source == "otel.gen_ai"
    assert usage.input_tokens == 50
    assert usage.output_tokens == 30
    assert usage.reasoning_tokens == 60


def test_usage_only_on_llm_spans(spans: dict[str, ImportedSpan]) -> None:
    for span in spans.values():
        if span.kind != "llm":
            assert span.usage is None, span.span_id


def test_generation_without_usage_has_none(spans: dict[str, ImportedSpan]) -> None:
    assert spans["a000000000000007"].usage is None


def test_provider_from_metadata_or_model(spans: dict[str, ImportedSpan]) -> None:
    assert spans["a000000000000002"].provider == "openai"
    assert spans["a000000000000002"].model == "gpt-4o-mini"
    assert spans["a000000000000006"].provider == "gcp.gemini"
    assert spans["a000000000000007"].provider == "anthropic"
    assert spans["a000000000000003"].provider is None


@pytest.mark.parametrize(
    ("model", "provider"),
    [("gpt-4o-mini", "openai"), ("o3-mini", "openai"), ("claude-3-5-haiku", "anthropic"),
     ("models/gemini-2.5-flash", "google"), ("mistral-large", "mistral"), ("unknown-model", None), (None, None)],
)
def test_provider_from_model_prefix(model: str | None, provider: str | None) -> None:
    assert langfuse.provider_from_model(model) == provider


def test_total_cost_is_an_attribute_only(spans: dict[str, ImportedSpan]) -> None:
    generation = spans["a000000000000002"]
    assert generation.reported_cost_usd is None
    assert generation.attributes["langfuse.total_cost"] == pytest.approx(0.0000375)


def test_tool_name_and_args_from_repr_metadata(spans: dict[str, ImportedSpan]) -> None:
    tool = spans["a000000000000003"]
    assert tool.tool_name == "lookup_weather"
    assert tool.tool_args == '{"city": "Lyon"}'
    assert tool.attributes["retries"] == [1, 2]


def test_tool_args_from_openinference_parameters(spans: dict[str, ImportedSpan]) -> None:
    tool = spans["a000000000000004"]
    assert tool.tool_name == "search_docs"
    assert tool.tool_args == '{"query": "umbrella"}'


def test_tool_args_fall_back_to_input() -> None:
    assert langfuse._tool_args({}, {"city": "Lyon"}) == '{"city": "Lyon"}'
    assert langfuse._tool_args({}, "not json {") == "not json {"
    assert langfuse._tool_args({}, None) is None


def test_bad_metadata_is_kept_and_flagged(spans: dict[str, ImportedSpan]) -> None:
    plan = spans["a000000000000005"]
    assert plan.attributes["spanline.unparsed_metadata"] == "{not valid metadata: [1, 2"


@pytest.mark.parametrize(
    ("raw", "expected", "unparsed"),
    [
        (None, {}, None),
        ({"a": 1}, {"a": 1}, None),
        ('{"a": 1}', {"a": 1}, None),
        ("{'a': (1, 2), 'b': None}", {"a": (1, 2), "b": None}, None),
        (json.dumps(json.dumps({"a": 1})), {"a": 1}, None),
        ("[1, 2]", {}, "[1, 2]"),
        ("{broken", {}, "{broken"),
    ],
)
def test_parse_metadata_forms(raw: object, expected: dict, unparsed: str | None) -> None:
    assert langfuse.parse_metadata(raw) == (expected, unparsed)


def test_error_level_sets_error_status(spans: dict[str, ImportedSpan]) -> None:
    failed = spans["a000000000000007"]
    assert failed.status == "error"
    assert failed.error_message == "429 rate limit exceeded"
    assert spans["a000000000000002"].status == "ok"
    assert spans["a000000000000002"].error_message is None


def test_scope_public_key_is_dropped(spans: dict[str, ImportedSpan]) -> None:
    attributes = spans["a000000000000002"].attributes
    assert attributes["otel.scope.name"] == "toy-instrumentation"
    assert attributes["resource.service.name"] == "toy-agent"
    assert "pk-example" not in json.dumps(attributes)


def test_attributes_are_json_serialisable(spans: dict[str, ImportedSpan]) -> None:
    for span in spans.values():
        json.dumps(span.attributes)


def test_missing_end_time_gives_zero_length(document: dict) -> None:
    changed = json.loads(json.dumps(document))
    changed["observations"][1]["endTime"] = None
    span = next(s for s in langfuse.parse(changed, source=FIXTURE.name)[0].spans if s.span_id == "a000000000000002")
    assert span.end_ns == span.start_ns
    assert span.attributes["spanline.missing_end_time"] is True


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda doc: doc["observations"][0].pop("startTime"), "startTime"),
        (lambda doc: doc["observations"][0].update(startTime="soon"), "invalid ISO-8601"),
        (lambda doc: doc["observations"][0].pop("id"), "has no 'id'"),
        (lambda doc: doc["observations"].append("text"), "expected an object"),
        (lambda doc: doc.pop("trace"), "not a Langfuse export"),
    ],
)
def test_invalid_observations_raise(document: dict, change, message: str) -> None:
    changed = json.loads(json.dumps(document))
    change(changed)
    with pytest.raises(ImportFormatError, match=message):
        langfuse.parse(changed, source=FIXTURE.name)


def test_several_trace_ids_give_several_runs(document: dict) -> None:
    changed = json.loads(json.dumps(document))
    changed["observations"][6]["traceId"] = "f" * 32
    runs = langfuse.parse(changed, source=FIXTURE.name)
    assert sorted(run.run_id for run in runs) == [TRACE_ID, "f" * 32]


def single_generation_export(level: str = "DEFAULT") -> dict:
    """A trace recorded as one parentless generation, the shape some SDK integrations send."""
    return {
        "trace": {
            "id": TRACE_ID, "name": "chat gpt-4o-mini", "timestamp": "2025-03-01T10:00:00.000Z",
            "latency": 2.5, "sessionId": "session-7",
        },
        "observations": [
            {
                "id": "b000000000000001", "traceId": TRACE_ID, "type": "GENERATION",
                "name": "chat gpt-4o-mini", "model": "gpt-4o-mini", "level": level,
                "statusMessage": "upstream 500" if level == "ERROR" else None,
                "startTime": "2025-03-01T10:00:00.100Z", "endTime": "2025-03-01T10:00:02.000Z",
            },
            {
                "id": "b000000000000002", "traceId": TRACE_ID, "type": "SPAN", "name": "orphan",
                "parentObservationId": "not-in-this-export",
                "startTime": "2025-03-01T10:00:00.200Z", "endTime": "2025-03-01T10:00:00.300Z",
            },
        ],
    }


def test_recorded_agent_root_is_kept(document: dict) -> None:
    spans = langfuse.parse(document, source=FIXTURE.name)[0].spans
    assert not any((span.attributes or {}).get("spanline.root_from") for span in spans)


def test_trace_without_agent_root_gets_one() -> None:
    spans = {span.span_id: span for span in langfuse.parse(single_generation_export(), source="x.json")[0].spans}
    (root,) = [span for span in spans.values() if span.attributes and span.attributes.get("spanline.root_from")]

    assert root.kind == "agent"
    assert root.parent_span_id == ""
    assert root.name == "chat gpt-4o-mini"
    assert root.status == "ok"
    assert root.start_ns == langfuse.iso_to_ns("2025-03-01T10:00:00.000Z")
    assert root.end_ns == root.start_ns + 2_500_000_000
    assert root.attributes["langfuse.trace.sessionId"] == "session-7"
    assert spans["b000000000000001"].parent_span_id == root.span_id
    assert spans["b000000000000002"].parent_span_id == "not-in-this-export"


def test_made_root_fails_with_failed_child() -> None:
    spans = langfuse.parse(single_generation_export(level="ERROR"), source="x.json")[0].spans
    (root,) = [span for span in spans if span.kind == "agent" and not span.parent_span_id]

    assert root.status == "error"
    assert root.error_message == "upstream 500"


def test_made_root_id_is_stable() -> None:
    first = langfuse.parse(single_generation_export(), source="x.json")[0].spans
    second = langfuse.parse(single_generation_export(), source="x.json")[0].spans
    assert [span.span_id for span in first] == [span.span_id for span in second]
