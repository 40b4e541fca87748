"""Usage normalisation rules per source, on hand-written usage blocks."""

from __future__ import annotations

import pytest

from pipeline.pricing.usage import USAGE_CLASSES, Usage, merge_anthropic_stream, normalise_usage


def test_openai_chat_splits_cached_reasoning_audio() -> None:
    usage = normalise_usage(
        "openai.chat",
        {
            "prompt_tokens": 1_200,
            "completion_tokens": 700,
            "prompt_tokens_details": {"cached_tokens": 1_000, "audio_tokens": 50},
            "completion_tokens_details": {"reasoning_tokens": 300, "audio_tokens": 100},
        },
    )
    assert usage.input_tokens == 150
    assert usage.cache_read_tokens == 1_000
    assert usage.audio_input_tokens == 50
    assert usage.output_tokens == 300
    assert usage.reasoning_tokens == 300
    assert usage.audio_output_tokens == 100
    assert usage.source == "openai.chat"


def test_openai_responses_splits_details() -> None:
    usage = normalise_usage(
        "openai.responses",
        {
            "input_tokens": 500,
            "input_tokens_details": {"cached_tokens": 200},
            "output_tokens": 90,
            "output_tokens_details": {"reasoning_tokens": 64},
        },
    )
    assert (usage.input_tokens, usage.cache_read_tokens) == (300, 200)
    assert (usage.output_tokens, usage.reasoning_tokens) == (26, 64)


def test_anthropic_input_excludes_cache() -> None:
    usage = normalise_usage(
        "anthropic",
        {
            "input_tokens": 12,
            "cache_read_input_tokens": 4_000,
            "cache_creation_input_tokens": 900,
            "cache_creation": {"ephemeral_5m_input_tokens": 600, "ephemeral_1h_input_tokens": 300},
            "output_tokens": 40,
        },
    )
    assert usage.input_tokens == 12
    assert usage.cache_read_tokens == 4_000
    assert usage.cache_write_tokens == 600
    assert usage.cache_write_1h_tokens == 300
    assert usage.output_tokens == 40


def test_anthropic_without_split_is_5m_write() -> None:
    usage = normalise_usage("anthropic", {"input_tokens": 1, "cache_creation_input_tokens": 70, "output_tokens": 2})
    assert usage.cache_write_tokens == 70
    assert usage.cache_write_1h_tokens is None


def test_anthropic_stream_takes_last_delta() -> None:
    events = [
        {
            "type": "message_start",
            "message": {"usage": {"input_tokens": 20, "cache_creation_input_tokens": 1_500,
                                  "cache_read_input_tokens": 0, "output_tokens": 1}},
        },
        {"type": "content_block_delta", "delta": {"text": "hi"}},
        {"type": "message_delta", "usage": {"output_tokens": 30}},
        {"type": "message_delta", "usage": {"output_tokens": 85}},
        {"type": "message_stop"},
    ]
    usage = merge_anthropic_stream(events)
    assert usage.output_tokens == 85
    assert usage.input_tokens == 20
    assert usage.cache_write_tokens == 1_500
    assert usage.source == "anthropic.stream"
    assert normalise_usage("anthropic.stream", {"events": events}) == usage


def test_gemini_prompt_includes_cached() -> None:
    usage = normalise_usage(
        "gemini",
        {"usageMetadata": {"promptTokenCount": 900, "cachedContentTokenCount": 800,
                           "candidatesTokenCount": 50, "thoughtsTokenCount": 120}},
    )
    assert (usage.input_tokens, usage.cache_read_tokens) == (100, 800)
    assert (usage.output_tokens, usage.reasoning_tokens) == (50, 120)


def test_bedrock_converse_and_invoke_model() -> None:
    converse = normalise_usage(
        "bedrock",
        {"inputTokens": 10, "outputTokens": 5, "cacheReadInputTokens": 300, "cacheWriteInputTokens": 40},
    )
    assert (converse.input_tokens, converse.cache_read_tokens, converse.cache_write_tokens) == (10, 300, 40)
    invoke = normalise_usage(
        "bedrock", {"input_tokens": 10, "cache_read_input_tokens": 300, "output_tokens": 5}
    )
    assert (invoke.input_tokens, invoke.cache_read_tokens, invoke.output_tokens) == (10, 300, 5)


def test_mistral_cached_inside_prompt() -> None:
    usage = normalise_usage(
        "mistral",
        {"prompt_tokens": 20, "completion_tokens": 18, "total_tokens": 38,
         "prompt_tokens_details": {"cached_tokens": 10}},
    )
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens) == (10, 10, 18)
    legacy = normalise_usage("mistral", {"prompt_tokens": 20, "completion_tokens": 1, "num_cached_tokens": 15})
    assert (legacy.input_tokens, legacy.cache_read_tokens) == (5, 15)


def test_otel_legacy_names_and_reasoning() -> None:
    usage = normalise_usage(
        "otel.gen_ai",
        {"gen_ai.usage.prompt_tokens": "300", "gen_ai.usage.completion_tokens": 200,
         "gen_ai.usage.reasoning.output_tokens": 150},
    )
    assert usage.input_tokens == 300
    assert (usage.output_tokens, usage.reasoning_tokens) == (50, 150)


def test_openinference_details_inside_totals() -> None:
    usage = normalise_usage(
        "openinference",
        {"llm.token_count.prompt": 1_000, "llm.token_count.prompt_details.cache_read": 600,
         "llm.token_count.prompt_details.cache_write": 100, "llm.token_count.completion": 80,
         "llm.token_count.completion_details.reasoning": 30},
    )
    assert (usage.input_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (300, 600, 100)
    assert (usage.output_tokens, usage.reasoning_tokens) == (50, 30)


def test_langfuse_total_decides_containment() -> None:
    inside = normalise_usage(
        "langfuse", {"input": 6, "output": 2_055, "completion_details.reasoning": 1_104, "total": 2_061}
    )
    assert (inside.output_tokens, inside.reasoning_tokens) == (951, 1_104)
    beside = normalise_usage(
        "langfuse", {"input": 100, "input_cache_read": 400, "output": 10, "output_reasoning": 5, "total": 515}
    )
    assert (beside.input_tokens, beside.cache_read_tokens) == (100, 400)
    assert (beside.output_tokens, beside.reasoning_tokens) == (10, 5)


def test_langfuse_json_text_accepted() -> None:
    usage = normalise_usage("langfuse", '{"input": 14, "output": 43, "total": 57}')
    assert (usage.input_tokens, usage.output_tokens) == (14, 43)


@pytest.mark.parametrize("source", ["openai.chat", "anthropic", "gemini", "otel.gen_ai", "langfuse"])
def test_missing_usage_is_unknown_not_zero(source: str) -> None:
    for raw in (None, {}):
        usage = normalise_usage(source, raw)
        assert usage.is_unknown()
        assert all(getattr(usage, name) is None for name in USAGE_CLASSES)


@pytest.mark.parametrize("value", [True, "lots", [3], -5, 2.5, float("nan"), 2**63, 10**30, "1" * 300])
def test_bad_count_rejected_with_key_and_value(value: object) -> None:
    with pytest.raises(ValueError, match="input_tokens") as caught:
        normalise_usage("anthropic", {"input_tokens": value})
    assert repr(value)[:4] in str(caught.value)


def test_unknown_source_lists_known_ones() -> None:
    with pytest.raises(ValueError, match="openai.chat.*langfuse"):
        normalise_usage("cohere.v2", {})


def test_integral_float_and_string_accepted() -> None:
    usage = normalise_usage("openai.chat", {"prompt_tokens": 12.0, "completion_tokens": " 7 "})
    assert usage == Usage(input_tokens=12, output_tokens=7, source="openai.chat")


def test_count_above_maximum_is_shortened_in_error() -> None:
    with pytest.raises(ValueError, match="above the maximum") as caught:
        normalise_usage("anthropic", {"input_tokens": "9" * 300})
    assert len(str(caught.value)) < 200


def test_count_at_maximum_accepted() -> None:
    from pipeline.pricing.usage import MAX_TOKEN_COUNT

    assert normalise_usage("anthropic", {"input_tokens": MAX_TOKEN_COUNT}).input_tokens == MAX_TOKEN_COUNT
