"""Mapping of hand-written OTLP exports to Spanline spans."""

from __future__ import annotations

import json

import pytest

from pipeline.otel.convert import convert_export, imported_runs, map_export
from pipeline.otel.decode import decode_json_document
from pipeline.otel.mapping import ConversionState, map_traces, tool_kind
from pipeline.otel.samples import STATUS_ERROR, otlp_json_export, span_json, to_protobuf
from pipeline.pricing.usage import Usage
from pipeline.wire.spans import decode_span_batch

T0 = 1_760_000_000_000_000_000  # 2025-10-09, UTC nanoseconds
TRACE = "0af7651916cd43dd8448eb211c80319c"
TRACE_2 = "4bf92f3577b34da6a3ce929d0e0e4736"


def sid(number: int) -> str:
    return f"{number:016x}"


def map_doc(document, state=None):
    return map_traces(decode_json_document(document), state)


def all_spans(mapped):
    return {span.span_id: span for run in mapped.runs for span in run.spans}


def current_genai_export():
    spans = [
        span_json("invoke_agent shopper", TRACE, sid(1), T0, T0 + 9_000, {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "shopper",
            "gen_ai.agent.id": "agent-7",
            "gen_ai.conversation.id": "conv-42",
        }),
        span_json("chat gpt-4o", TRACE, sid(2), T0 + 1_000, T0 + 3_000, {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.cache_read.input_tokens": 200,
            "gen_ai.usage.cache_creation.input_tokens": 100,
            "gen_ai.usage.reasoning.output_tokens": 50,
            "gen_ai.conversation.id": "conv-42",
            "gen_ai.request.temperature": 0.2,
        }, parent_span_id=sid(1), kind=3),
        span_json("execute_tool get_weather", TRACE, sid(3), T0 + 4_000, T0 + 5_000, {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "get_weather",
            "gen_ai.tool.call.id": "call_1",
            "gen_ai.tool.call.arguments": '{"city": "Oslo"',
        }, parent_span_id=sid(1)),
        span_json("plan shopper", TRACE, sid(4), T0 + 3_500, T0 + 3_600, {
            "gen_ai.operation.name": "plan",
        }, parent_span_id=sid(1)),
    ]
    return otlp_json_export(spans, resource={"service.name": "shop-service", "deployment.environment": "test"})


def test_current_genai_llm_span_gets_model_and_usage():
    spans = all_spans(map_doc(current_genai_export()))
    llm = spans[sid(2)]
    assert llm.kind == "llm"
    assert llm.provider == "openai"
    assert llm.model == "gpt-4o-2024-08-06"
    assert llm.usage == Usage(
        input_tokens=900, cache_read_tokens=200, cache_write_tokens=100,
        output_tokens=250, reasoning_tokens=50, source="otel.gen_ai",
    )
    assert llm.attributes["gen_ai.request.model"] == "gpt-4o"
    assert "gen_ai.response.model" not in llm.attributes
    assert "gen_ai.usage.input_tokens" not in llm.attributes
    assert llm.attributes["gen_ai.request.temperature"] == 0.2
    assert llm.attributes["otel.span_kind"] == "client"
    assert llm.parent_span_id == sid(1)


def test_current_genai_tool_agent_and_plan_kinds():
    spans = all_spans(map_doc(current_genai_export()))
    assert spans[sid(1)].kind == "agent"
    assert spans[sid(4)].kind == "plan"
    tool = spans[sid(3)]
    assert tool.kind == "tool"
    assert tool.tool_name == "get_weather"
    assert tool.tool_args == '{"city": "Oslo"'  # kept exactly, even though it does not parse
    assert tool.attributes["gen_ai.tool.call.id"] == "call_1"


def test_conversation_id_names_run_for_whole_trace():
    mapped = map_doc(current_genai_export())
    assert [run.run_id for run in mapped.runs] == ["conv-42"]
    assert mapped.runs[0].agent == "shopper"
    assert len(mapped.runs[0].spans) == 4


def test_steps_follow_start_time_of_actions():
    spans = all_spans(map_doc(current_genai_export()))
    assert spans[sid(2)].step == 1  # llm
    assert spans[sid(3)].step == 2  # tool
    assert spans[sid(1)].step == 1  # agent span opens step 1
    assert spans[sid(4)].step == 2  # plan before the tool sits at the tool's step


def test_legacy_genai_names():
    document = otlp_json_export([
        span_json("chat gpt-4o", TRACE, sid(1), T0, T0 + 10, {
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.prompt_tokens": 31,
            "gen_ai.usage.completion_tokens": 96,
        }),
    ])
    span = all_spans(map_doc(document))[sid(1)]
    assert span.kind == "llm"
    assert span.provider == "openai"
    assert span.model == "gpt-4o"
    assert span.usage.input_tokens == 31
    assert span.usage.output_tokens == 96
    assert span.usage.source == "otel.gen_ai"


def test_genai_and_openinference_on_one_span_prefers_genai():
    document = otlp_json_export([
        span_json("chat gpt-4o", TRACE, sid(1), T0, T0 + 10, {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "llm.model_name": "other-model",
            "gen_ai.usage.input_tokens": 10,
            "llm.token_count.prompt": 99,
        }),
    ])
    span = all_spans(map_doc(document))[sid(1)]
    assert span.model == "gpt-4o"
    assert span.usage.input_tokens == 10
    assert span.attributes["llm.model_name"] == "other-model"


def openinference_export():
    return otlp_json_export([
        span_json("Agent.run", TRACE, sid(1), T0, T0 + 100, {
            "openinference.span.kind": "AGENT", "agent.name": "researcher", "session.id": "sess-9",
        }),
        span_json("OpenAI.chat", TRACE, sid(2), T0 + 10, T0 + 50, {
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o-mini",
            "llm.provider": "openai",
            "llm.token_count.prompt": 500,
            "llm.token_count.completion": 80,
            "llm.token_count.prompt_details.cache_read": 100,
            "llm.token_count.completion_details.reasoning": 30,
            "llm.cost.total": 0.0012,
            "input.value": "hello",
        }, parent_span_id=sid(1)),
        span_json("search", TRACE, sid(3), T0 + 60, T0 + 90, {
            "openinference.span.kind": "TOOL", "tool.name": "web_search", "input.value": '{"q": "x"}',
        }, parent_span_id=sid(1)),
        span_json("pipeline", TRACE, sid(4), T0 + 5, T0 + 95, {"openinference.span.kind": "CHAIN"}),
    ], resource={"service.name": "oi-service"})


def test_openinference_llm_span():
    mapped = map_doc(openinference_export())
    spans = all_spans(mapped)
    llm = spans[sid(2)]
    assert llm.kind == "llm"
    assert llm.model == "gpt-4o-mini"
    assert llm.provider == "openai"
    assert llm.usage == Usage(
        input_tokens=400, cache_read_tokens=100, output_tokens=50, reasoning_tokens=30,
        source="openinference",
    )
    assert llm.reported_cost_usd == pytest.approx(0.0012)
    assert llm.attributes["input.value"] == "hello"


def test_openinference_tool_chain_and_session():
    mapped = map_doc(openinference_export())
    spans = all_spans(mapped)
    assert spans[sid(3)].kind == "tool"
    assert spans[sid(3)].tool_name == "web_search"
    assert spans[sid(3)].tool_args == '{"q": "x"}'
    assert spans[sid(4)].kind == "agent"
    assert spans[sid(1)].kind == "agent"
    assert [run.run_id for run in mapped.runs] == ["sess-9"]
    assert mapped.runs[0].agent == "researcher"


def test_trace_id_is_run_without_conversation():
    document = otlp_json_export([
        span_json("chat m", TRACE, sid(1), T0, T0 + 10, {"gen_ai.operation.name": "chat"}),
        span_json("chat m", TRACE_2, sid(2), T0, T0 + 10, {"gen_ai.operation.name": "chat"}),
    ], resource={"service.name": "svc-a"})
    mapped = map_doc(document)
    assert sorted(run.run_id for run in mapped.runs) == sorted([TRACE, TRACE_2])
    assert {run.agent for run in mapped.runs} == {"svc-a"}


def test_trace_run_remembered_across_exports():
    state = ConversionState()
    first = otlp_json_export([
        span_json("chat m", TRACE, sid(1), T0, T0 + 10, {
            "gen_ai.operation.name": "chat", "gen_ai.conversation.id": "conv-1",
        }),
    ])
    second = otlp_json_export([
        span_json("execute_tool t", TRACE, sid(2), T0 + 20, T0 + 30, {"gen_ai.operation.name": "execute_tool"}),
    ])
    map_doc(first, state)
    mapped = map_doc(second, state)
    assert mapped.runs[0].run_id == "conv-1"
    assert mapped.runs[0].spans[0].step == 2
    assert mapped.runs[0].spans[0].tool_name == "t"


def test_resource_scope_events_links_kept():
    document = otlp_json_export([
        span_json("chat m", TRACE, sid(1), T0, T0 + 10, {"gen_ai.operation.name": "chat", "custom.key": [1, 2]},
                  events=[{"name": "gen_ai.content.prompt", "time_ns": T0 + 1, "attributes": {"gen_ai.prompt": "hi"}}],
                  links=[{"trace_id": TRACE_2, "span_id": sid(9), "attributes": {"why": "retry"}}]),
    ], resource={"service.name": "svc", "host.name": "box-1"}, scope_name="my.scope", scope_version="2.1")
    attributes = all_spans(map_doc(document))[sid(1)].attributes
    assert attributes["custom.key"] == [1, 2]
    assert attributes["resource.service.name"] == "svc"
    assert attributes["resource.host.name"] == "box-1"
    assert attributes["otel.scope.name"] == "my.scope"
    assert attributes["otel.scope.version"] == "2.1"
    assert attributes["otel.events"] == [
        {"name": "gen_ai.content.prompt", "time_unix_nano": T0 + 1, "attributes": {"gen_ai.prompt": "hi"}}
    ]
    assert attributes["otel.links"] == [{"trace_id": TRACE_2, "span_id": sid(9), "attributes": {"why": "retry"}}]


def test_error_status_and_exception_event():
    document = otlp_json_export([
        span_json("execute_tool pay", TRACE, sid(1), T0, T0 + 10, {"gen_ai.operation.name": "execute_tool"},
                  status_code=STATUS_ERROR,
                  events=[{"name": "exception", "time_ns": T0 + 5,
                           "attributes": {"exception.type": "TimeoutError", "exception.message": "no answer"}}]),
    ])
    span = all_spans(map_doc(document))[sid(1)]
    assert span.status == "error"
    assert span.error_message == "TimeoutError: no answer"


@pytest.mark.parametrize("tool_name, expected", [
    ("browser_click", "browser"),
    ("click", "browser"),
    ("page.goto", "browser"),
    ("send_email", "inbox"),
    ("inbox.read", "inbox"),
    ("get_weather", "tool"),
])
def test_tool_kind_by_name(tool_name, expected):
    assert tool_kind(tool_name) == expected


def test_browser_tool_span_kind():
    document = otlp_json_export([
        span_json("execute_tool browser_navigate", TRACE, sid(1), T0, T0 + 10, {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "browser_navigate",
        }),
    ])
    assert all_spans(map_doc(document))[sid(1)].kind == "browser"


def test_end_before_start_kept_and_flagged():
    document = otlp_json_export([span_json("chat m", TRACE, sid(1), T0 + 100, T0, {"gen_ai.operation.name": "chat"})])
    mapped = map_doc(document)
    span = all_spans(mapped)[sid(1)]
    assert span.attributes["spanline.flags"] == ["end_before_start"]
    assert mapped.rejected == []


@pytest.mark.parametrize("start, end", [
    (1_700_000_000, 1_700_000_001),  # seconds sent as nanoseconds
    (1_700_000_000_000_000, 1_700_000_000_000_100),  # microseconds
    (0, T0),  # unset start
])
def test_timestamp_out_of_range_rejects_only_that_span(start, end):
    document = otlp_json_export([
        span_json("chat m", TRACE, sid(1), start, end, {"gen_ai.operation.name": "chat"}),
        span_json("chat m", TRACE, sid(2), T0, T0 + 10, {"gen_ai.operation.name": "chat"}),
    ])
    mapped = map_doc(document)
    assert list(all_spans(mapped)) == [sid(2)]
    assert [(r.span_id, r.reason) for r in mapped.rejected] == [(sid(1), "timestamp_out_of_range")]
    rejected_span = mapped.rejected[0].export.resource_spans[0].scope_spans[0].spans[0]
    assert rejected_span.span_id.hex() == sid(1)


def test_invalid_ids_reject_span():
    document = otlp_json_export([
        span_json("a", "00" * 16, sid(1), T0, T0 + 1),
        span_json("b", TRACE, "zz", T0, T0 + 1),
        span_json("c", TRACE, "0102", T0, T0 + 1),
        span_json("d", TRACE, sid(4), T0, T0 + 1),
    ])
    mapped = map_doc(document)
    assert list(all_spans(mapped)) == [sid(4)]
    assert [r.reason for r in mapped.rejected] == ["invalid_id", "invalid_span", "invalid_id"]


def test_invalid_utf8_in_json_replaced_and_flagged():
    document = otlp_json_export([span_json("chat m", TRACE, sid(1), T0, T0 + 1, {"note": "caf\udce9"})])
    span = all_spans(map_doc(document))[sid(1)]
    assert span.attributes["note"] == "caf\ufffd"
    assert span.attributes["spanline.flags"] == ["invalid_utf8"]


def test_invalid_utf8_in_protobuf_replaced_and_flagged():
    document = otlp_json_export([
        span_json("chat m", TRACE, sid(1), T0, T0 + 1, {"note": "MARKER"}),
        span_json("chat m", TRACE, sid(2), T0, T0 + 1, {"note": "fine"}),
    ])
    data = to_protobuf(document).replace(b"MARKER", b"MA\xff\xfeER")
    mapped = map_export(data, "otlp_proto")
    spans = all_spans(mapped)
    assert spans[sid(1)].attributes["note"] == "MA\ufffd\ufffdER"
    assert spans[sid(1)].attributes["spanline.flags"] == ["invalid_utf8"]
    assert "spanline.flags" not in spans[sid(2)].attributes


def test_invalid_usage_count_flagged_and_kept():
    document = otlp_json_export([
        span_json("chat m", TRACE, sid(1), T0, T0 + 1, {
            "gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": "lots",
        }),
    ])
    span = all_spans(map_doc(document))[sid(1)]
    assert span.usage is None
    assert span.attributes["gen_ai.usage.input_tokens"] == "lots"
    assert span.attributes["spanline.flags"] == ["invalid_usage"]


def test_usage_on_agent_span_stays_attribute():
    document = otlp_json_export([
        span_json("qa_agent run", TRACE, sid(1), T0, T0 + 1, {
            "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20,
        }),
    ])
    span = all_spans(map_doc(document))[sid(1)]
    assert span.kind == "agent"
    assert span.usage is None
    assert span.attributes["gen_ai.usage.input_tokens"] == 100


def test_vercel_do_generate_is_llm_and_outer_is_agent():
    document = otlp_json_export([
        span_json("ai.generateText", TRACE, sid(1), T0, T0 + 10, {
            "ai.model.id": "gpt-5", "ai.usage.promptTokens": 14,
        }),
        span_json("ai.generateText.doGenerate", TRACE, sid(2), T0 + 1, T0 + 9, {
            "gen_ai.system": "openai.responses", "gen_ai.request.model": "gpt-5",
            "gen_ai.usage.input_tokens": 14, "gen_ai.usage.output_tokens": 43,
        }, parent_span_id=sid(1)),
        span_json("ai.toolCall", TRACE, sid(3), T0 + 9, T0 + 10, {
            "ai.toolCall.name": "getWeather", "ai.toolCall.args": '{"city":"Rome"}',
        }, parent_span_id=sid(1)),
    ])
    spans = all_spans(map_doc(document))
    assert spans[sid(1)].kind == "agent"
    assert spans[sid(2)].kind == "llm"
    assert spans[sid(2)].usage.output_tokens == 43
    assert spans[sid(3)].tool_name == "getWeather"
    assert spans[sid(3)].tool_args == '{"city":"Rome"}'


def test_convert_export_proto_and_json_give_same_batches():
    document = current_genai_export()
    from_proto = convert_export(to_protobuf(document), "otlp_proto")
    from_json = convert_export(json.dumps(document).encode(), "otlp_json")
    assert [batch.value for batch in from_proto.batches] == [batch.value for batch in from_json.batches]
    batch = decode_span_batch(from_proto.batches[0].value)
    assert batch.run_id == "conv-42"
    assert batch.agent == "shopper"
    assert batch.size == 4
    assert from_proto.batches[0].key == b"conv-42"
    llm_index = batch.columns["span_id"].index(sid(2))
    assert batch.columns["model"][llm_index] == "gpt-4o-2024-08-06"
    assert batch.columns["input_tokens"][llm_index] == 900
    assert batch.columns["usage_source"][llm_index] == "otel.gen_ai"
    assert json.loads(batch.columns["attributes"][llm_index])["resource.service.name"] == "shop-service"


def test_convert_export_splits_large_runs():
    spans = [
        span_json("chat m", TRACE, sid(index + 1), T0 + index, T0 + index + 1, {
            "gen_ai.operation.name": "chat", "gen_ai.conversation.id": "big", "padding": "x" * 3000,
        })
        for index in range(600)
    ]
    converted = convert_export(to_protobuf(otlp_json_export(spans)), "otlp_proto")
    assert converted.accepted_count == 600
    assert len(converted.batches) >= 3
    assert all(len(batch.value) <= 900_000 for batch in converted.batches)
    steps = sorted(step for batch in converted.batches for step in decode_span_batch(batch.value).columns["step"])
    assert steps == list(range(1, 601))


def test_imported_runs_for_importer():
    runs = imported_runs(current_genai_export(), source="export.json")
    assert [run.run_id for run in runs] == ["conv-42"]
    assert runs[0].agent == "shopper"
    assert [span.step for span in runs[0].spans] == [1, 1, 2, 2]
    assert runs[0].spans[1].model == "gpt-4o-2024-08-06"
