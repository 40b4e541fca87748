"""AgentLab episode parsing on a hand-written episode shaped like real ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.importers import agentlab
from pipeline.importers.model import ImportedSpan, ImportFormatError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "import" / "toy-episode.steps.json"
T0_NS = 1_700_000_000_000_000_000


@pytest.fixture(scope="module")
def document() -> dict:
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def spans(document: dict) -> list[ImportedSpan]:
    runs = agentlab.parse(document, source=FIXTURE.name)
    assert len(runs) == 1
    return runs[0].spans


def test_run_identity(document: dict) -> None:
    run = agentlab.parse(document, source=FIXTURE.name)[0]
    assert run.agent == "ToyAgent-gpt-4o-mini"
    assert len(run.run_id) == 32
    assert run.run_id == agentlab.parse(document, source="other-name.json")[0].run_id
    assert run.frames == []


def test_span_layout(spans: list[ImportedSpan]) -> None:
    assert [(span.kind, span.step) for span in spans] == [
        ("agent", 1),
        ("llm", 1),
        ("browser", 1),
        ("llm", 2),
        ("browser", 2),
        ("llm", 3),
        ("browser", 3),
    ]


def test_children_point_at_episode(spans: list[ImportedSpan]) -> None:
    root = spans[0]
    assert root.parent_span_id == ""
    for span in spans[1:]:
        assert span.parent_span_id == root.span_id
        assert span.trace_id == root.trace_id


def test_llm_timing_from_agent_phase(spans: list[ImportedSpan]) -> None:
    first_llm = spans[1]
    assert first_llm.start_ns == T0_NS + 1_250_000_000
    assert first_llm.end_ns == T0_NS + 2_500_000_000


def test_action_timing_from_next_step(spans: list[ImportedSpan]) -> None:
    fill = spans[2]
    assert fill.start_ns == T0_NS + 2_500_000_000
    assert fill.end_ns == T0_NS + 2_750_000_000


def test_episode_covers_all_steps(spans: list[ImportedSpan]) -> None:
    root = spans[0]
    assert root.start_ns == T0_NS
    assert root.end_ns == T0_NS + 7_000_000_000
    assert root.attributes["agentlab.task"] == "toy.fill-form"
    assert root.status == "ok"


def test_llm_usage_uses_openai_chat_rule(spans: list[ImportedSpan]) -> None:
    llm = spans[1]
    assert llm.provider == "openai"
    assert llm.model == "gpt-4o-mini"
    assert llm.usage is not None
    assert llm.usage.source == "openai.chat"
    assert llm.usage.input_tokens == 1000
    assert llm.usage.output_tokens == 50


def test_agent_cost_is_an_attribute_only(spans: list[ImportedSpan]) -> None:
    llm = spans[1]
    assert llm.reported_cost_usd is None
    assert llm.attributes["agentlab.cost_usd"] == pytest.approx(0.00018)
    assert llm.attributes["agentlab.think"] == "The name box is bid 5."


def test_browser_action_tool_fields(spans: list[ImportedSpan]) -> None:
    fill = spans[2]
    assert fill.tool_name == "fill"
    assert json.loads(fill.tool_args) == {"bid": "5", "value": "Ada"}
    assert fill.attributes["agentlab.action"] == "fill('5', 'Ada')"
    assert fill.attributes["browser.url"] == "http://127.0.0.1/form.html"


def test_failed_action_is_error(spans: list[ImportedSpan]) -> None:
    failed_click = spans[4]
    assert failed_click.tool_args == '{"bid": "99"}'
    assert failed_click.status == "error"
    assert failed_click.error_message == "TimeoutError: no element with bid 99"
    assert spans[6].status == "ok"


@pytest.mark.parametrize(
    ("action", "name", "arguments"),
    [
        ("click('30')", "click", {"bid": "30"}),
        ("click('30', button='right')", "click", {"bid": "30", "button": "right"}),
        ("fill('12', 'two words')", "fill", {"bid": "12", "value": "two words"}),
        ("scroll(0, 200)", "scroll", {"delta_x": 0, "delta_y": 200}),
        ("noop()", "noop", {}),
        ("send_msg_to_user('done')", "send_msg_to_user", {"text": "done"}),
        ("custom_action(1, 2)", "custom_action", {"arg0": 1, "arg1": 2}),
    ],
)
def test_parse_action_names_arguments(action: str, name: str, arguments: dict) -> None:
    parsed_name, parsed_args, calls = agentlab.parse_action(action)
    assert parsed_name == name
    assert json.loads(parsed_args) == arguments
    assert len(calls) == 1


def test_parse_action_keeps_every_call() -> None:
    name, _, calls = agentlab.parse_action("fill('1', 'a')\nclick('2')")
    assert name == "fill"
    assert [call["name"] for call in calls] == ["fill", "click"]


@pytest.mark.parametrize("action", ["click(x)", "click('1'", "x = 1", "", "page.click('a')"])
def test_parse_action_rejects_non_literal_calls(action: str) -> None:
    assert agentlab.parse_action(action) == (None, None, [])


def test_unparsed_action_is_flagged(document: dict) -> None:
    changed = json.loads(json.dumps(document))
    changed["steps"][0]["state"]["action"] = "do something clever"
    browser = agentlab.parse(changed, source=FIXTURE.name)[0].spans[2]
    assert browser.tool_name is None
    assert browser.attributes["spanline.unparsed_action"] is True
    assert browser.attributes["agentlab.action"] == "do something clever"


def test_cut_episode_has_zero_length_action(document: dict) -> None:
    changed = json.loads(json.dumps(document))
    del changed["steps"][-1]
    last_browser = agentlab.parse(changed, source=FIXTURE.name)[0].spans[-1]
    assert last_browser.start_ns == last_browser.end_ns == T0_NS + 6_000_000_000
    assert last_browser.attributes["spanline.missing_action_timing"] is True


def test_episode_error_message_sets_error(document: dict) -> None:
    changed = json.loads(json.dumps(document))
    changed["summary_info"]["err_msg"] = "browser crashed"
    root = agentlab.parse(changed, source=FIXTURE.name)[0].spans[0]
    assert root.status == "error"
    assert root.error_message == "browser crashed"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda doc: doc["steps"][0]["state"]["profiling"]["state"].update(agent_start=0), "agent_start"),
        (lambda doc: doc["steps"][0]["state"]["profiling"]["state"].update(agent_stop="late"), "not epoch seconds"),
        (lambda doc: doc["steps"][0]["state"]["stats"].update(input_tokens=-5), "invalid token counts"),
        (lambda doc: doc["steps"].append(3), "expected an object"),
        (lambda doc: doc.update(steps={}), "not an AgentLab episode"),
    ],
)
def test_invalid_steps_raise(document: dict, change, message: str) -> None:
    changed = json.loads(json.dumps(document))
    change(changed)
    with pytest.raises(ImportFormatError, match=message):
        agentlab.parse(changed, source=FIXTURE.name)
