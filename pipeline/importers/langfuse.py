"""Langfuse trace exports (`{"trace": {...}, "observations": [...]}`) into imported runs.

Rules, applied per observation:

- kind: GENERATION and EMBEDDING are `llm`; TOOL and RETRIEVER are `tool`; AGENT is `agent`.
  Other types (SPAN, CHAIN, EVENT, GUARDRAIL, EVALUATOR) look at the original OpenTelemetry
  attributes: `openinference.span.kind` TOOL/RETRIEVER or a tool name (`gen_ai.tool.name`,
  `ai.toolCall.name`) or `gen_ai.operation.name=execute_tool` make a `tool`;
  `openinference.span.kind=AGENT` or `gen_ai.operation.name=invoke_agent` make an `agent`;
  `gen_ai.operation.name=plan` makes a `plan`; anything else (a chain, a framework's grouping
  span, the root) is an `agent`. Only real plans become `plan`, because every plan span after a
  run's first counts as a replan.
- steps: see `pipeline.importers.model.number_steps`.
- run: one run per trace id, run id = trace id. The agent is the framework named by the file
  (`agno-2025-06-11.trace.json` is `agno`), else the trace name.
- usage: only `llm` spans carry usage, because parent spans often repeat their children's totals.
  Candidates are Langfuse's `usageDetails`, the OTel `gen_ai.usage.*` attributes and the
  OpenInference `llm.token_count.*` attributes. The candidate with the most known classes wins,
  with Langfuse first on a tie, so a reasoning or cache count that only the raw attributes kept is
  not lost.
- cost: Langfuse's `totalCost` is Langfuse's own computation, not a provider-reported cost, so it
  goes to the attribute `langfuse.total_cost` and never to `reported_cost_usd`.
- status: `level=ERROR` or an OTel error status is `error`, with `statusMessage` as the message.
- root: a trace whose observations have no parentless `agent` span gets one, made from the
  Langfuse trace itself (its name, timestamp and latency, widened to cover every observation) and
  marked with the attribute `spanline.root_from = "langfuse.trace"`. The parentless observations
  become its children. It is `error` when one of them is. Without it the runs worker could never
  call the run finished, because it decides that when a root agent span arrives.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pipeline.importers.model import (
    ImportedRun,
    ImportedSpan,
    ImportFormatError,
    cap_attributes,
    iso_to_ns,
    number_steps,
    to_json_safe,
)
from pipeline.pricing.usage import USAGE_CLASSES, Usage, normalise_usage

logger = logging.getLogger(__name__)

FORMAT_NAME = "langfuse"

_TYPE_KINDS = {
    "GENERATION": "llm",
    "EMBEDDING": "llm",
    "TOOL": "tool",
    "RETRIEVER": "tool",
    "AGENT": "agent",
}
_PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system", "ls_provider")
_MODEL_KEYS = ("gen_ai.response.model", "gen_ai.request.model", "llm.model_name", "ls_model_name")
_TOOL_NAME_KEYS = ("gen_ai.tool.name", "tool.name", "ai.toolCall.name")
_TOOL_ARGS_KEYS = (
    "gen_ai.tool.call.arguments",
    "tool_arguments",
    "tool.parameters",
    "ai.toolCall.args",
    "input.value",
)
# Model name prefixes, for observations whose metadata names no provider.
_MODEL_PROVIDERS = (
    (("gpt-", "o1", "o3", "o4", "chatgpt", "text-embedding", "davinci"), "openai"),
    (("claude",), "anthropic"),
    (("gemini", "gemma"), "google"),
    (("mistral", "mixtral", "codestral", "magistral", "ministral"), "mistral"),
    (("command",), "cohere"),
    (("llama",), "meta"),
    (("deepseek",), "deepseek"),
    (("grok",), "xai"),
)
_FILE_DATE = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def looks_like(document: Any) -> bool:
    """Return True when a decoded JSON document has the Langfuse export shape."""
    return (
        isinstance(document, Mapping)
        and isinstance(document.get("observations"), list)
        and isinstance(document.get("trace"), Mapping)
    )


def agent_from_file_name(file_name: str) -> str | None:
    """Return the framework a file is named after (`agno-2025-06-11.trace.json` is `agno`)."""
    stem = file_name
    for suffix in (".json", ".trace"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    if not _FILE_DATE.search(stem):
        return None
    return _FILE_DATE.sub("", stem) or None


def parse(document: Any, *, source: str = "", agent: str | None = None) -> list[ImportedRun]:
    """Convert one Langfuse export into runs, one per trace id.

    `source` is the file name, used for the agent name and in errors. Raises ImportFormatError
    naming the observation when a required field is missing or invalid.
    """
    if not looks_like(document):
        raise ImportFormatError(
            "not a Langfuse export: expected a JSON object with 'trace' (object) and "
            "'observations' (list)"
        )
    trace = document["trace"]
    agent_name = agent or agent_from_file_name(source.rsplit("/", 1)[-1]) or trace.get("name")
    if not agent_name:
        raise ImportFormatError("no agent name: the file name has no framework and the trace no name; pass --agent")

    spans_by_trace: dict[str, list[ImportedSpan]] = {}
    for index, observation in enumerate(document["observations"]):
        span = _parse_observation(observation, index, trace)
        spans_by_trace.setdefault(span.trace_id or "", []).append(span)

    runs = []
    for trace_id, spans in spans_by_trace.items():
        spans = with_trace_root(spans, trace_id, trace if trace.get("id") == trace_id else {})
        runs.append(
            ImportedRun(run_id=trace_id, agent=str(agent_name), spans=number_steps(spans), source=source)
        )
    if not runs:
        logger.warning("langfuse export has no observations source=%s", source)
    return runs


def with_trace_root(spans: list[ImportedSpan], trace_id: str, trace: Mapping[str, Any]) -> list[ImportedSpan]:
    """Add a root agent span made from the Langfuse trace when the observations have none.

    `trace` is the export's trace object when it describes `trace_id`, else empty. Returns
    `spans` unchanged when a parentless agent span exists.
    """
    roots = [span for span in spans if not span.parent_span_id]
    if not spans or any(span.kind == "agent" for span in roots):
        return spans

    start_ns = min(span.start_ns for span in spans)
    end_ns = max(span.end_ns for span in spans)
    attributes: dict[str, Any] = {"spanline.root_from": "langfuse.trace"}
    timestamp = trace.get("timestamp")
    if isinstance(timestamp, str):
        try:
            trace_start_ns = iso_to_ns(timestamp)
        except ValueError:
            attributes["spanline.invalid_trace_timestamp"] = timestamp
        else:
            start_ns = min(start_ns, trace_start_ns)
            latency = trace.get("latency")
            if isinstance(latency, (int, float)) and latency >= 0:
                end_ns = max(end_ns, trace_start_ns + int(latency * 1e9))
    for key in ("sessionId", "userId", "environment", "release", "version"):
        if trace.get(key) is not None:
            attributes[f"langfuse.trace.{key}"] = trace[key]

    failed = [span for span in roots if span.status == "error"]
    root_id = hashlib.sha256(f"langfuse-trace-root/{trace_id}".encode()).hexdigest()[:16]
    root = ImportedSpan(
        kind="agent",
        name=str(trace.get("name") or "trace"),
        start_ns=start_ns,
        end_ns=end_ns,
        step=1,
        span_id=root_id,
        parent_span_id="",
        trace_id=trace_id,
        status="error" if failed else "ok",
        error_message=failed[0].error_message if failed else None,
        attributes=attributes,
    )
    children = [replace(span, parent_span_id=root_id) if not span.parent_span_id else span for span in spans]
    return [root, *children]


def _parse_observation(observation: Any, index: int, trace: Mapping[str, Any]) -> ImportedSpan:
    if not isinstance(observation, Mapping):
        raise ImportFormatError(f"observation #{index} is a {type(observation).__name__}, expected an object")
    observation_id = observation.get("id")
    where = f"observation #{index} (id {observation_id!r})"
    if not observation_id:
        raise ImportFormatError(f"{where} has no 'id'")
    trace_id = observation.get("traceId") or trace.get("id")
    if not trace_id:
        raise ImportFormatError(f"{where} has no 'traceId' and the trace no 'id'")

    start_text = observation.get("startTime")
    if not isinstance(start_text, str):
        raise ImportFormatError(f"{where} has no 'startTime'")
    try:
        start_ns = iso_to_ns(start_text)
        end_text = observation.get("endTime")
        end_ns = iso_to_ns(end_text) if isinstance(end_text, str) else start_ns
    except ValueError as error:
        raise ImportFormatError(f"{where}: {error}") from None

    metadata, unparsed_metadata = parse_metadata(observation.get("metadata"))
    otel_attributes = metadata.get("attributes") if isinstance(metadata.get("attributes"), Mapping) else {}
    lookup = {**{k: v for k, v in metadata.items() if not isinstance(v, Mapping)}, **otel_attributes}

    observation_type = str(observation.get("type") or "SPAN").upper()
    is_root = not observation.get("parentObservationId")
    kind = map_kind(observation_type, lookup, is_root=is_root)

    attributes = _attributes(observation, metadata, observation_type, trace)
    if unparsed_metadata is not None:
        attributes["spanline.unparsed_metadata"] = unparsed_metadata
    if not isinstance(end_text, str):
        attributes["spanline.missing_end_time"] = True
    if end_ns < start_ns:
        attributes["spanline.end_before_start_ns"] = end_ns
        end_ns = start_ns

    # Provider and model go on llm spans only: pricing reads them, and a tool or agent span that
    # names a model did not itself call it. Other spans keep them among their attributes.
    provider = model = usage = None
    if kind == "llm":
        model = observation.get("model") or _first_text(lookup, _MODEL_KEYS)
        provider = _first_text(lookup, _PROVIDER_KEYS) or provider_from_model(model)
        usage, usage_note = choose_usage(observation.get("usageDetails"), otel_attributes)
        if usage_note:
            attributes["spanline.usage_error"] = usage_note

    tool_name = tool_args = None
    if kind == "tool":
        tool_name = _first_text(lookup, _TOOL_NAME_KEYS) or str(observation.get("name") or "")
        tool_args = _tool_args(lookup, observation.get("input"))

    status, error_message = _status(observation, lookup)
    return ImportedSpan(
        kind=kind,
        name=str(observation.get("name") or observation_type.lower()),
        start_ns=start_ns,
        end_ns=end_ns,
        step=1,
        span_id=str(observation_id),
        parent_span_id=str(observation.get("parentObservationId") or ""),
        trace_id=str(trace_id),
        status=status,
        error_message=error_message,
        provider=provider,
        model=model,
        usage=usage,
        tool_name=tool_name,
        tool_args=tool_args,
        attributes=cap_attributes(attributes),
        reported_cost_usd=None,
    )


def parse_metadata(raw: Any) -> tuple[dict[str, Any], str | None]:
    """Decode observation metadata given as an object, JSON text or Python-repr text.

    Returns the decoded mapping and, when the text decodes to no mapping, the raw text so the
    caller can keep it.
    """
    if raw is None or raw == "":
        return {}, None
    if isinstance(raw, Mapping):
        return dict(raw), None
    if not isinstance(raw, str):
        return {}, repr(raw)
    text = raw
    # Two rounds, because some exporters encode the metadata object as JSON text twice.
    for _ in range(2):
        decoded = _decode_text(text)
        if isinstance(decoded, Mapping):
            return dict(decoded), None
        if not isinstance(decoded, str):
            break
        text = decoded
    return {}, raw


def _decode_text(text: str) -> Any:
    for decode in (json.loads, ast.literal_eval):
        try:
            return decode(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return None


def map_kind(observation_type: str, attributes: Mapping[str, Any], *, is_root: bool) -> str:
    """Return the span kind of a Langfuse observation type (rules in the module docstring)."""
    if observation_type in _TYPE_KINDS:
        return _TYPE_KINDS[observation_type]
    openinference_kind = str(attributes.get("openinference.span.kind") or "").upper()
    operation = str(attributes.get("gen_ai.operation.name") or "")
    if openinference_kind in ("TOOL", "RETRIEVER"):
        return "tool"
    if openinference_kind == "AGENT":
        return "agent"
    if not openinference_kind:
        if operation == "execute_tool" or _first_text(attributes, ("gen_ai.tool.name", "ai.toolCall.name")):
            return "tool"
        if operation in ("invoke_agent", "create_agent"):
            return "agent"
    if operation == "plan":
        return "plan"
    return "agent"


def provider_from_model(model: str | None) -> str | None:
    """Guess the provider from a model name's prefix; None when the prefix is not known."""
    if not model:
        return None
    name = model.lower().rsplit("/", 1)[-1]
    for prefixes, provider in _MODEL_PROVIDERS:
        if name.startswith(prefixes):
            return provider
    return None


def choose_usage(usage_details: Any, otel_attributes: Mapping[str, Any]) -> tuple[Usage | None, str | None]:
    """Return the richest usage among usageDetails and the raw OTel attributes, and an error note.

    The note is set when a candidate could not be normalised; the other candidates still count.
    None is returned when no candidate has a known class.
    """
    candidates: list[tuple[str, Any]] = [("langfuse", usage_details)]
    gen_ai = {k: v for k, v in otel_attributes.items() if k.startswith("gen_ai.usage.")}
    if gen_ai:
        candidates.append(("otel.gen_ai", gen_ai))
    openinference = {k: v for k, v in otel_attributes.items() if k.startswith("llm.token_count.")}
    if openinference:
        candidates.append(("openinference", openinference))

    best: Usage | None = None
    best_known = 0
    notes: list[str] = []
    for source, raw in candidates:
        if raw is None or raw == {} or raw == "":
            continue
        try:
            usage = normalise_usage(source, raw)
        except ValueError as error:
            notes.append(f"{source}: {error}")
            continue
        known = sum(1 for name in USAGE_CLASSES if getattr(usage, name) is not None)
        if known > best_known:
            best, best_known = usage, known
    return best, "; ".join(notes) or None


def _attributes(
    observation: Mapping[str, Any],
    metadata: Mapping[str, Any],
    observation_type: str,
    trace: Mapping[str, Any],
) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    otel_attributes = metadata.get("attributes")
    if isinstance(otel_attributes, Mapping):
        attributes.update(otel_attributes)
    # Framework keys Langfuse kept beside the OTel attributes (langgraph_node, tags, ...).
    for key, value in metadata.items():
        if key not in ("attributes", "resourceAttributes", "scope"):
            attributes.setdefault(key, value)
    resource = metadata.get("resourceAttributes")
    if isinstance(resource, Mapping):
        for key, value in resource.items():
            attributes[f"resource.{key}"] = value
    # The scope's own attributes hold the Langfuse project's public key, so only its name and
    # version are kept.
    scope = metadata.get("scope")
    if isinstance(scope, Mapping):
        for key in ("name", "version"):
            if scope.get(key) is not None:
                attributes[f"otel.scope.{key}"] = scope[key]

    attributes["langfuse.observation_type"] = observation_type
    attributes["langfuse.observation_id"] = observation.get("id")
    if trace.get("name"):
        attributes["langfuse.trace_name"] = trace["name"]
    for field_name, attribute in (
        ("level", "langfuse.level"),
        ("statusMessage", "langfuse.status_message"),
        ("totalCost", "langfuse.total_cost"),
        ("costDetails", "langfuse.cost_details"),
        ("usageDetails", "langfuse.usage_details"),
        ("model", "langfuse.model"),
    ):
        value = observation.get(field_name)
        if value not in (None, "", {}):
            attributes[attribute] = value
    return to_json_safe(attributes)


def _status(observation: Mapping[str, Any], attributes: Mapping[str, Any]) -> tuple[str, str | None]:
    level = str(observation.get("level") or "").upper()
    message = observation.get("statusMessage")
    otel_status = str(attributes.get("otel.status_code") or attributes.get("status_code") or "").upper()
    if level == "ERROR" or otel_status in ("ERROR", "STATUS_CODE_ERROR"):
        text = message or attributes.get("otel.status_description") or attributes.get("error.type")
        return "error", str(text) if text else f"observation level {level or otel_status}"
    return "ok", None


def _tool_args(attributes: Mapping[str, Any], observation_input: Any) -> str | None:
    for key in _TOOL_ARGS_KEYS:
        value = attributes.get(key)
        if value is not None and value != "":
            return _as_json_text(value)
    if observation_input is None or observation_input == "":
        return None
    return _as_json_text(observation_input)


def _as_json_text(value: Any) -> str:
    # Text is kept exactly as recorded, even when it is not valid JSON.
    if isinstance(value, str):
        return value
    return json.dumps(to_json_safe(value), ensure_ascii=False)


def _first_text(attributes: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None
