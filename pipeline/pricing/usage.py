"""Token usage split into disjoint classes, the shape every span carries on the wire."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

USAGE_CLASSES = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
)


@dataclass(frozen=True)
class Usage:
    """Token counts in disjoint classes: no class is contained in another.

    `input_tokens` excludes cache reads and writes; `output_tokens` excludes reasoning. None means
    the source did not report that class (unknown), which is different from 0.
    """

    input_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cache_write_1h_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    audio_input_tokens: int | None = None
    audio_output_tokens: int | None = None
    source: str | None = None

    def is_unknown(self) -> bool:
        return all(getattr(self, name) is None for name in USAGE_CLASSES)


# --- normalisation per source -------------------------------------------------------------------
#
# Every rule below turns one source's usage block into disjoint classes. The sources disagree on
# what contains what: OpenAI, Gemini, OTel GenAI and OpenInference count cached tokens inside the
# prompt count, Anthropic and Bedrock Converse count them beside it; OpenAI counts reasoning
# inside the completion count, Gemini beside it. docs/pricing.md has the table.

logger = logging.getLogger(__name__)

Number = int | None

# Counts above this are rejected as invalid. It is a chosen bound, not a provider limit. A trillion
# tokens is far beyond any model's context window today. The bound is also far below the maximum
# of the Avro long and PostgreSQL bigint that carry the count.
MAX_TOKEN_COUNT = 10**12


def _count(raw: Mapping[str, Any], key: str, *, label: str | None = None) -> Number:
    """Read one token count: ints, integral floats and digit strings pass; None means absent."""
    value = raw.get(key) if isinstance(raw, Mapping) else None
    return _as_count(value, label or key)


def _as_count(value: Any, label: str) -> Number:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"usage key {label!r} has the boolean value {value!r}; expected a token count")
    if isinstance(value, int):
        result = value
    elif isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(f"usage key {label!r} has the value {value!r}; expected a whole token count")
        result = int(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            result = int(text)
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                raise ValueError(
                    f"usage key {label!r} has the value {value!r}, which is not a number"
                ) from None
            return _as_count(as_float, label)
    else:
        raise ValueError(
            f"usage key {label!r} has the value {value!r} of type {type(value).__name__}; "
            "expected a token count"
        )
    if result < 0:
        raise ValueError(f"usage key {label!r} has the negative value {value!r}")
    if result > MAX_TOKEN_COUNT:
        value_text = repr(value) if len(repr(value)) <= 30 else repr(value)[:27] + "..."
        raise ValueError(f"usage key {label!r} has the value {value_text}, above the maximum of {MAX_TOKEN_COUNT:,} tokens")
    return result


def _nested(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key)
    return value if isinstance(value, Mapping) else {}


def _minus(total: Number, *parts: Number) -> Number:
    """Subtract known parts from a total that contains them; clamp at 0 with a warning."""
    if total is None:
        return None
    rest = total - sum(part for part in parts if part is not None)
    if rest < 0:
        logger.warning("usage parts exceed their total total=%s parts=%s; using 0", total, parts)
        return 0
    return rest


def _plus(*values: Number) -> Number:
    known = [value for value in values if value is not None]
    return sum(known) if known else None


def _first(*values: Number) -> Number:
    return next((value for value in values if value is not None), None)


def _openai_chat(raw: Mapping[str, Any]) -> Usage:
    # prompt_tokens contains cached and audio prompt tokens; completion_tokens contains reasoning
    # and audio completion tokens.
    prompt = _count(raw, "prompt_tokens")
    completion = _count(raw, "completion_tokens")
    prompt_details = _nested(raw, "prompt_tokens_details")
    completion_details = _nested(raw, "completion_tokens_details")
    cached = _count(prompt_details, "cached_tokens", label="prompt_tokens_details.cached_tokens")
    cache_write = _count(
        prompt_details, "cache_write_tokens", label="prompt_tokens_details.cache_write_tokens"
    )
    audio_in = _count(prompt_details, "audio_tokens", label="prompt_tokens_details.audio_tokens")
    reasoning = _count(
        completion_details, "reasoning_tokens", label="completion_tokens_details.reasoning_tokens"
    )
    audio_out = _count(
        completion_details, "audio_tokens", label="completion_tokens_details.audio_tokens"
    )
    return Usage(
        input_tokens=_minus(prompt, cached, cache_write, audio_in),
        cache_read_tokens=cached,
        cache_write_tokens=cache_write,
        output_tokens=_minus(completion, reasoning, audio_out),
        reasoning_tokens=reasoning,
        audio_input_tokens=audio_in,
        audio_output_tokens=audio_out,
    )


def _mistral(raw: Mapping[str, Any]) -> Usage:
    # Mistral is OpenAI-shaped; older responses put the cache hit count at the top level as
    # num_cached_tokens instead of prompt_tokens_details.cached_tokens. Both sit inside
    # prompt_tokens.
    usage = _openai_chat(raw)
    if usage.cache_read_tokens is None:
        cached = _count(raw, "num_cached_tokens")
        if cached is not None:
            prompt = _count(raw, "prompt_tokens")
            usage = replace(usage, cache_read_tokens=cached, input_tokens=_minus(prompt, cached))
    return usage


def _openai_responses(raw: Mapping[str, Any]) -> Usage:
    # input_tokens contains input_tokens_details.cached_tokens; output_tokens contains
    # output_tokens_details.reasoning_tokens.
    total_in = _count(raw, "input_tokens")
    total_out = _count(raw, "output_tokens")
    in_details = _nested(raw, "input_tokens_details")
    out_details = _nested(raw, "output_tokens_details")
    cached = _count(in_details, "cached_tokens", label="input_tokens_details.cached_tokens")
    cache_write = _count(
        in_details, "cache_write_tokens", label="input_tokens_details.cache_write_tokens"
    )
    reasoning = _count(
        out_details, "reasoning_tokens", label="output_tokens_details.reasoning_tokens"
    )
    return Usage(
        input_tokens=_minus(total_in, cached, cache_write),
        cache_read_tokens=cached,
        cache_write_tokens=cache_write,
        output_tokens=_minus(total_out, reasoning),
        reasoning_tokens=reasoning,
    )


def _anthropic(raw: Mapping[str, Any]) -> Usage:
    # input_tokens already excludes cache reads and writes. cache_creation splits the writes by
    # lifetime; without the split every write is billed as the default 5-minute lifetime.
    # output_tokens contains thinking tokens and the API does not split them out (except the
    # output_tokens_details.thinking_tokens some gateways add).
    cache_write_total = _count(raw, "cache_creation_input_tokens")
    split = _nested(raw, "cache_creation")
    write_5m = _count(split, "ephemeral_5m_input_tokens", label="cache_creation.ephemeral_5m_input_tokens")
    write_1h = _count(split, "ephemeral_1h_input_tokens", label="cache_creation.ephemeral_1h_input_tokens")
    if write_5m is None and write_1h is None:
        write_5m = cache_write_total
    elif cache_write_total is not None and (write_5m or 0) + (write_1h or 0) < cache_write_total:
        # A split that does not add up to the total: the unsplit rest is billed as 5-minute writes.
        write_5m = cache_write_total - (write_1h or 0)
    output = _count(raw, "output_tokens")
    thinking = _count(
        _nested(raw, "output_tokens_details"), "thinking_tokens",
        label="output_tokens_details.thinking_tokens",
    )
    return Usage(
        input_tokens=_count(raw, "input_tokens"),
        cache_read_tokens=_count(raw, "cache_read_input_tokens"),
        cache_write_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
        output_tokens=_minus(output, thinking),
        reasoning_tokens=thinking,
    )


def _gemini(raw: Mapping[str, Any]) -> Usage:
    # promptTokenCount contains cachedContentTokenCount; candidatesTokenCount excludes
    # thoughtsTokenCount. toolUsePromptTokenCount (tool results fed back) is input beside the prompt.
    # promptTokensDetails splits the prompt by modality; audio has its own price.
    prompt = _count(raw, "promptTokenCount")
    cached = _count(raw, "cachedContentTokenCount")
    tool_prompt = _count(raw, "toolUsePromptTokenCount")
    audio_in = _modality_count(raw.get("promptTokensDetails"), "AUDIO", "promptTokensDetails")
    cached_audio = _modality_count(raw.get("cacheTokensDetails"), "AUDIO", "cacheTokensDetails")
    # NOTE: cached audio is billed as an ordinary cache read and image/video output tokens as
    # text output, because the Usage classes have no place for them.
    if audio_in is not None and cached_audio:
        audio_in = max(audio_in - cached_audio, 0)
    return Usage(
        input_tokens=_plus(_minus(prompt, cached, audio_in), tool_prompt),
        cache_read_tokens=cached,
        audio_input_tokens=audio_in,
        output_tokens=_count(raw, "candidatesTokenCount"),
        reasoning_tokens=_count(raw, "thoughtsTokenCount"),
    )


def _modality_count(details: Any, modality: str, label: str) -> Number:
    """Sum tokenCount of the entries of a Gemini modality list with this modality."""
    if not isinstance(details, list):
        return None
    total = None
    for item in details:
        if isinstance(item, Mapping) and str(item.get("modality", "")).upper() == modality:
            count = _as_count(item.get("tokenCount"), f"{label}[{modality}].tokenCount")
            total = (total or 0) + (count or 0)
    return total


def _bedrock(raw: Mapping[str, Any]) -> Usage:
    # Converse reports inputTokens beside cacheReadInputTokens and cacheWriteInputTokens. A body
    # from invoke_model with an Anthropic model is the Anthropic Messages shape.
    if "inputTokens" not in raw and "outputTokens" not in raw and (
        "input_tokens" in raw or "output_tokens" in raw
    ):
        return _anthropic(raw)
    return Usage(
        input_tokens=_count(raw, "inputTokens"),
        cache_read_tokens=_count(raw, "cacheReadInputTokens"),
        cache_write_tokens=_count(raw, "cacheWriteInputTokens"),
        output_tokens=_count(raw, "outputTokens"),
    )


def _otel_gen_ai(raw: Mapping[str, Any]) -> Usage:
    # gen_ai.usage.input_tokens contains the cache read and cache creation counts;
    # gen_ai.usage.output_tokens contains the reasoning count. The pre-1.37 names
    # prompt_tokens/completion_tokens mean the same as input_tokens/output_tokens.
    total_in = _first(
        _count(raw, "gen_ai.usage.input_tokens"), _count(raw, "gen_ai.usage.prompt_tokens")
    )
    total_out = _first(
        _count(raw, "gen_ai.usage.output_tokens"), _count(raw, "gen_ai.usage.completion_tokens")
    )
    cache_read = _count(raw, "gen_ai.usage.cache_read.input_tokens")
    cache_write = _count(raw, "gen_ai.usage.cache_creation.input_tokens")
    reasoning = _first(
        _count(raw, "gen_ai.usage.reasoning.output_tokens"),
        _count(raw, "gen_ai.usage.reasoning_tokens"),
    )
    audio_in = _count(raw, "gen_ai.usage.audio.input_tokens")
    audio_out = _count(raw, "gen_ai.usage.audio.output_tokens")
    return Usage(
        input_tokens=_minus(total_in, cache_read, cache_write, audio_in),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        output_tokens=_minus(total_out, reasoning, audio_out),
        reasoning_tokens=reasoning,
        audio_input_tokens=audio_in,
        audio_output_tokens=audio_out,
    )


def _openinference(raw: Mapping[str, Any]) -> Usage:
    # llm.token_count.prompt contains the prompt_details counts; completion contains the
    # completion_details counts. cache_input is an older name of cache_write.
    prompt = _count(raw, "llm.token_count.prompt")
    completion = _count(raw, "llm.token_count.completion")
    cache_read = _count(raw, "llm.token_count.prompt_details.cache_read")
    cache_write = _first(
        _count(raw, "llm.token_count.prompt_details.cache_write"),
        _count(raw, "llm.token_count.prompt_details.cache_input"),
    )
    audio_in = _count(raw, "llm.token_count.prompt_details.audio")
    reasoning = _count(raw, "llm.token_count.completion_details.reasoning")
    audio_out = _count(raw, "llm.token_count.completion_details.audio")
    return Usage(
        input_tokens=_minus(prompt, cache_read, cache_write, audio_in),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        output_tokens=_minus(completion, reasoning, audio_out),
        reasoning_tokens=reasoning,
        audio_input_tokens=audio_in,
        audio_output_tokens=audio_out,
    )


# Langfuse usageDetails keys, by the class they count. Whether a detail key is inside `input` /
# `output` depends on who wrote it: keys forwarded from OpenInference or OTel
# (prompt_details.*, completion_details.*) are inside, keys the Langfuse SDK integrations write
# (input_*, output_*) and Anthropic's own names are beside them.
_LANGFUSE_DETAIL_KEYS: dict[str, tuple[str, bool]] = {
    # key: (usage class, inside input/output by default)
    "prompt_details.cache_read": ("cache_read_tokens", True),
    "prompt_details.cache_write": ("cache_write_tokens", True),
    "prompt_details.cache_input": ("cache_write_tokens", True),
    "prompt_details.audio": ("audio_input_tokens", True),
    "completion_details.reasoning": ("reasoning_tokens", True),
    "completion_details.audio": ("audio_output_tokens", True),
    "input_cache_read": ("cache_read_tokens", False),
    "input_cached_tokens": ("cache_read_tokens", False),
    "input_cache_creation": ("cache_write_tokens", False),
    "input_cache_write": ("cache_write_tokens", False),
    "input_audio": ("audio_input_tokens", False),
    "input_audio_tokens": ("audio_input_tokens", False),
    "cache_read_input_tokens": ("cache_read_tokens", False),
    "cache_creation_input_tokens": ("cache_write_tokens", False),
    "output_reasoning": ("reasoning_tokens", False),
    "output_reasoning_tokens": ("reasoning_tokens", False),
    "output_audio": ("audio_output_tokens", False),
    "output_audio_tokens": ("audio_output_tokens", False),
}
_INPUT_SIDE = {"cache_read_tokens", "cache_write_tokens", "audio_input_tokens"}


def _langfuse(raw: Mapping[str, Any]) -> Usage:
    """Split Langfuse usageDetails; a present `total` decides whether details are inside."""
    input_total = _first(_count(raw, "input"), _count(raw, "prompt_tokens"), _count(raw, "input_tokens"))
    output_total = _first(
        _count(raw, "output"), _count(raw, "completion_tokens"), _count(raw, "output_tokens")
    )
    total = _count(raw, "total")
    details: dict[str, tuple[int, bool]] = {}
    unknown_beside_input = 0
    for key, value in raw.items():
        if key in {"input", "output", "total", "prompt_tokens", "completion_tokens", "input_tokens",
                   "output_tokens", "total_tokens"}:
            continue
        count = _as_count(value, key)
        if count is None:
            continue
        known = _LANGFUSE_DETAIL_KEYS.get(key)
        if known is None:
            if key.startswith("input_"):
                # An input detail of a kind we do not price separately: bill it as input.
                unknown_beside_input += count
            else:
                logger.debug("langfuse usage key ignored key=%s value=%s", key, count)
            continue
        usage_class, inside = known
        previous = details.get(usage_class, (0, inside))
        details[usage_class] = (previous[0] + count, inside)

    detail_sum = sum(count for count, _ in details.values())
    if total is not None and detail_sum > 0 and input_total is not None:
        base = input_total + (output_total or 0) + unknown_beside_input
        if total == base:
            details = {name: (count, True) for name, (count, _) in details.items()}
        elif total == base + detail_sum:
            details = {name: (count, False) for name, (count, _) in details.items()}

    values: dict[str, Number] = {name: count for name, (count, _) in details.items()}
    inside_input = [count for name, (count, inside) in details.items() if inside and name in _INPUT_SIDE]
    inside_output = [count for name, (count, inside) in details.items() if inside and name not in _INPUT_SIDE]
    values["input_tokens"] = _plus(_minus(input_total, *inside_input), unknown_beside_input or None)
    values["output_tokens"] = _minus(output_total, *inside_output)
    return Usage(**values)


def merge_anthropic_stream(events: Iterable[Mapping[str, Any]]) -> Usage:
    """Combine the usage of an Anthropic Messages stream into one Usage.

    `message_start` carries the input side; every `message_delta` carries usage counted from the
    start of the message (cumulative), so the last delta's values replace earlier ones and are
    never added up.
    """
    merged: dict[str, Any] = {}
    for event in events:
        if not isinstance(event, Mapping):
            continue
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message")
            if isinstance(message, Mapping) and isinstance(message.get("usage"), Mapping):
                merged.update(message["usage"])
        elif kind == "message_delta" and isinstance(event.get("usage"), Mapping):
            merged.update({key: value for key, value in event["usage"].items() if value is not None})
    usage = _anthropic(merged) if merged else Usage()
    return replace(usage, source="anthropic.stream")


def _anthropic_stream(raw: Any) -> Usage:
    events = raw.get("events", ()) if isinstance(raw, Mapping) else raw
    return merge_anthropic_stream(events)


_RULES: dict[str, Callable[[Any], Usage]] = {
    "openai.chat": _openai_chat,
    "openai.responses": _openai_responses,
    "anthropic": _anthropic,
    "anthropic.stream": _anthropic_stream,
    "gemini": _gemini,
    "bedrock": _bedrock,
    "mistral": _mistral,
    "otel.gen_ai": _otel_gen_ai,
    "openinference": _openinference,
    "langfuse": _langfuse,
}
USAGE_SOURCES = tuple(_RULES)

# Keys that hold the usage block when a whole response body is passed instead of the block.
_WRAPPER_KEYS = ("usage", "usageMetadata", "usageDetails", "usage_details")


def normalise_usage(source: str, raw: Mapping[str, Any] | None) -> Usage:
    """Split one source's usage block into disjoint classes (see docs/pricing.md for the rules).

    `raw` may be the usage block itself or a whole response that holds it under `usage` or
    `usageMetadata`; Langfuse usageDetails may be JSON text. A missing or empty block gives a
    Usage whose classes are all None (unknown), never zeros. Raises ValueError for an unknown
    source and for a count that is not a non-negative whole number (booleans included).
    """
    rule = _RULES.get(source)
    if rule is None:
        raise ValueError(
            f"unknown usage source {source!r}; known sources: {', '.join(USAGE_SOURCES)}"
        )
    if raw is None:
        return Usage(source=source)
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            raise ValueError(f"usage for source {source!r} is text that is not JSON: {raw[:80]!r}") from None
    if source != "anthropic.stream":
        if not isinstance(raw, Mapping):
            raise ValueError(
                f"usage for source {source!r} must be a mapping, got {type(raw).__name__}"
            )
        for wrapper in _WRAPPER_KEYS:
            inner = raw.get(wrapper)
            if isinstance(inner, str) and source == "langfuse":
                inner = json.loads(inner) if inner.strip() else {}
            if isinstance(inner, Mapping):
                raw = inner
                break
    usage = rule(raw)
    return replace(usage, source=source)
