"""Map decoded OTLP spans to Spanline spans: kind, run, step, model, usage, tool, attributes.

docs/otel.md lists the rules. OTel GenAI attributes (current and pre-1.37 names) win over
OpenInference ones when a span carries both. Spans that are neither an LLM call, a tool call nor
a plan become `agent` (grouping) spans. The run is the conversation or session id, else the
trace id. Nothing is dropped: every attribute without a column of its own stays in `attributes`,
resource attributes get the prefix `resource.`, and events and links are kept as JSON arrays.
Pure: no I/O, and the only state is the optional `ConversionState`.
"""

from __future__ import annotations

import base64
import json
import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status, TracesData

from pipeline.otel.decode import DecodedTraces, SpanPosition
from pipeline.pricing.usage import Usage, normalise_usage

logger = logging.getLogger(__name__)

# Timestamps outside [2000-01-01, 2100-01-01) UTC are taken as a unit error (seconds, milliseconds
# or microseconds sent as nanoseconds) and the span is rejected rather than guessed at.
MIN_VALID_NS = 946_684_800 * 1_000_000_000
MAX_VALID_NS = 4_102_444_800 * 1_000_000_000

FLAGS_ATTRIBUTE = "spanline.flags"
ACTION_KINDS = frozenset({"llm", "tool", "browser", "inbox"})

_INFERENCE_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
_TOOL_OPERATIONS = frozenset({
    "execute_tool", "retrieval", "create_memory_store", "delete_memory_store", "create_memory",
    "update_memory", "upsert_memory", "search_memory", "delete_memory",
})
_AGENT_OPERATIONS = frozenset({"invoke_agent", "create_agent", "invoke_workflow"})
_OPENINFERENCE_KINDS = {
    "LLM": "llm",
    "EMBEDDING": "llm",
    "TOOL": "tool",
    "RETRIEVER": "tool",
    "RERANKER": "tool",
    "AGENT": "agent",
}
# Vercel AI SDK span names: the provider call is the inner do* span, the outer span only sums it.
_VERCEL_LLM_SUFFIXES = (".doGenerate", ".doStream", ".doEmbed")

# Tool names that mean a browser or an inbox action, matched on the lower-cased name.
_BROWSER_PREFIXES = ("browser", "page.", "playwright", "web_browser")
_BROWSER_ACTIONS = frozenset({
    "click", "dblclick", "hover", "fill", "type", "press", "scroll", "goto", "go_back",
    "go_forward", "navigate", "select_option", "upload_file", "drag_and_drop", "screenshot",
    "new_tab", "tab_focus", "close_tab", "focus", "clear", "mouse_click", "keyboard_press",
})
_INBOX_PREFIXES = ("inbox", "email", "mail", "gmail", "outlook")
_INBOX_ACTIONS = frozenset({"send_email", "read_email", "list_emails", "search_emails", "reply_email"})

_SPAN_KIND_NAMES = {
    Span.SPAN_KIND_INTERNAL: "internal",
    Span.SPAN_KIND_SERVER: "server",
    Span.SPAN_KIND_CLIENT: "client",
    Span.SPAN_KIND_PRODUCER: "producer",
    Span.SPAN_KIND_CONSUMER: "consumer",
}
_STATUS_NAMES = {Status.STATUS_CODE_OK: "ok", Status.STATUS_CODE_ERROR: "error"}

_PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
_MODEL_KEYS = (
    "gen_ai.response.model",
    "gen_ai.request.model",
    "llm.response.model_name",
    "llm.model_name",
    "llm.request.model_name",
    "ai.response.model",
    "ai.model.id",
)
_TOOL_NAME_KEYS = ("gen_ai.tool.name", "tool.name", "ai.toolCall.name")
_RUN_KEYS = ("gen_ai.conversation.id", "session.id")
_AGENT_KEYS = ("gen_ai.agent.name", "agent.name")
_COST_KEYS = ("llm.cost.total", "operation.cost")


@dataclass(slots=True)
class MappedSpan:
    """One OTLP span as the arguments of `Run.record_span`, plus the run it belongs to."""

    run_id: str
    agent_name: str | None
    service_name: str | None
    kind: str
    name: str
    start_ns: int
    end_ns: int
    span_id: str
    parent_span_id: str
    trace_id: str
    status: str
    error_message: str | None
    provider: str | None
    model: str | None
    usage: Usage | None
    tool_name: str | None
    tool_args: str | None
    attributes: dict[str, Any]
    reported_cost_usd: float | None
    step: int = 0


@dataclass(frozen=True)
class RejectedSpan:
    """A span that cannot be stored, with the reason and a one-span export of it for the DLQ."""

    trace_id: str
    span_id: str
    reason: str
    detail: str
    export: TracesData


@dataclass
class RunSpans:
    """The mapped spans of one run within one export, in step order."""

    run_id: str
    agent: str
    spans: list[MappedSpan] = field(default_factory=list)


@dataclass
class MappedTraces:
    """One export mapped: spans grouped per run, and the rejected spans."""

    runs: list[RunSpans]
    rejected: list[RejectedSpan]
    span_count: int

    @property
    def accepted_count(self) -> int:
        return sum(len(run.spans) for run in self.runs)


class ConversionState:
    """Memory shared by the exports of one converter process, bounded to `max_entries` each.

    It stores the run each trace id was assigned to, so spans of a trace that arrive in a later
    export without the conversation id still join that run. It also stores the last step given
    per run, so steps keep increasing across exports.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self.trace_runs: OrderedDict[str, str] = OrderedDict()
        self.last_steps: OrderedDict[str, int] = OrderedDict()

    def run_of_trace(self, trace_id: str) -> str | None:
        run_id = self.trace_runs.get(trace_id)
        if run_id is not None:
            self.trace_runs.move_to_end(trace_id)
        return run_id

    def remember_trace(self, trace_id: str, run_id: str) -> None:
        self._put(self.trace_runs, trace_id, run_id)

    def last_step(self, run_id: str) -> int:
        return self.last_steps.get(run_id, 0)

    def remember_step(self, run_id: str, step: int) -> None:
        self._put(self.last_steps, run_id, step)

    def _put(self, table: OrderedDict[str, Any], key: str, value: Any) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > self.max_entries:
            table.popitem(last=False)


# --- values ------------------------------------------------------------------------------------

def any_value(value: AnyValue) -> Any:
    """Convert an OTLP AnyValue to plain Python: str, bool, int, float, list, dict or None.

    Bytes become base64 text, the way OTLP/JSON writes them.
    """
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return key_values(value.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return getattr(value, which)


def key_values(items: Iterable[KeyValue]) -> dict[str, Any]:
    """Convert repeated KeyValue to a dict; a repeated key keeps its last value."""
    return {item.key: any_value(item.value) for item in items}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _first_key(attributes: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[str | None, str | None]:
    for key in keys:
        text = _text(attributes.get(key))
        if text is not None:
            return key, text
    return None, None


# --- kind ----------------------------------------------------------------------------------------

def span_kind(name: str, attributes: Mapping[str, Any]) -> str:
    """Return the Spanline kind of a span from its attributes, else from its name."""
    explicit = attributes.get("spanline.kind")
    if isinstance(explicit, str) and explicit in {"llm", "tool", "browser", "inbox", "plan", "agent"}:
        return explicit
    base = _base_kind(name, attributes)
    if base == "tool":
        _, tool_name = _first_key(attributes, _TOOL_NAME_KEYS)
        return tool_kind(tool_name or _name_suffix(name, "execute_tool") or "")
    return base


def _base_kind(name: str, attributes: Mapping[str, Any]) -> str:
    operation = attributes.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation:
        if operation in _INFERENCE_OPERATIONS:
            return "llm"
        if operation in _TOOL_OPERATIONS:
            return "tool"
        if operation == "plan":
            return "plan"
        if operation in _AGENT_OPERATIONS:
            return "agent"
    openinference_kind = attributes.get("openinference.span.kind")
    if isinstance(openinference_kind, str) and openinference_kind:
        return _OPENINFERENCE_KINDS.get(openinference_kind.upper(), "agent")
    if name.endswith(_VERCEL_LLM_SUFFIXES):
        return "llm"
    if name == "ai.toolCall":
        return "tool"
    if any(_text(attributes.get(key)) for key in _TOOL_NAME_KEYS):
        return "tool"
    if _text(attributes.get("gen_ai.request.model")) or _text(attributes.get("gen_ai.response.model")):
        return "llm"
    first_word = name.split(" ", 1)[0]
    if first_word in _INFERENCE_OPERATIONS:
        return "llm"
    if first_word == "execute_tool":
        return "tool"
    if first_word == "plan":
        return "plan"
    return "agent"


def tool_kind(tool_name: str) -> str:
    """Return `browser` or `inbox` for a tool named like such an action, else `tool`."""
    lowered = tool_name.strip().lower()
    if lowered.startswith(_BROWSER_PREFIXES) or lowered in _BROWSER_ACTIONS:
        return "browser"
    if lowered.startswith(_INBOX_PREFIXES) or lowered in _INBOX_ACTIONS:
        return "inbox"
    return "tool"


def _name_suffix(name: str, operation: str) -> str | None:
    prefix = operation + " "
    return name[len(prefix):].strip() or None if name.startswith(prefix) else None


# --- one span -------------------------------------------------------------------------------------

@dataclass(slots=True)
class _Context:
    resource: dict[str, Any]
    resource_prefixed: dict[str, Any]
    scope_name: str
    scope_version: str
    scope_attributes: dict[str, Any]
    resource_schema_url: str
    scope_schema_url: str


def _usage_for(attributes: dict[str, Any], flags: list[str]) -> tuple[Usage | None, list[str]]:
    """Normalise usage; return it and the attribute keys it consumed."""
    otel_keys = [key for key in attributes if key.startswith("gen_ai.usage.")]
    openinference_keys = [key for key in attributes if key.startswith("llm.token_count.")]
    if otel_keys:
        source, keys = "otel.gen_ai", otel_keys
    elif openinference_keys:
        source, keys = "openinference", openinference_keys
    else:
        return None, []
    try:
        usage = normalise_usage(source, {key: attributes[key] for key in keys})
    except ValueError as error:
        flags.append("invalid_usage")
        attributes["spanline.usage_error"] = str(error)
        return None, []
    if usage.is_unknown():
        return None, []
    # Only the keys the rule reads leave the attributes; others (per-modality details) stay.
    consumed = [key for key in keys if key in _USAGE_RULE_KEYS]
    return usage, consumed


_USAGE_RULE_KEYS = frozenset({
    "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens", "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens", "gen_ai.usage.audio.input_tokens",
    "gen_ai.usage.audio.output_tokens", "llm.token_count.prompt", "llm.token_count.completion",
    "llm.token_count.prompt_details.cache_read", "llm.token_count.prompt_details.cache_write",
    "llm.token_count.prompt_details.cache_input", "llm.token_count.prompt_details.audio",
    "llm.token_count.completion_details.reasoning", "llm.token_count.completion_details.audio",
})


def _reported_cost(attributes: Mapping[str, Any]) -> tuple[str | None, float | None]:
    for key in _COST_KEYS:
        value = attributes.get(key)
        if value is None or isinstance(value, bool):
            continue
        try:
            cost = float(value)
        except (TypeError, ValueError):
            continue
        if cost == cost and cost >= 0:  # rejects NaN and negatives
            return key, cost
    return None, None


def _events(span: Span) -> list[dict[str, Any]]:
    events = []
    for event in span.events:
        item: dict[str, Any] = {"name": event.name, "time_unix_nano": event.time_unix_nano}
        if event.attributes:
            item["attributes"] = key_values(event.attributes)
        if event.dropped_attributes_count:
            item["dropped_attributes_count"] = event.dropped_attributes_count
        events.append(item)
    return events


def _links(span: Span) -> list[dict[str, Any]]:
    links = []
    for link in span.links:
        item: dict[str, Any] = {"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex()}
        if link.trace_state:
            item["trace_state"] = link.trace_state
        if link.attributes:
            item["attributes"] = key_values(link.attributes)
        if link.flags:
            item["flags"] = link.flags
        if link.dropped_attributes_count:
            item["dropped_attributes_count"] = link.dropped_attributes_count
        links.append(item)
    return links


def _error_message(span: Span, attributes: Mapping[str, Any], events: list[dict[str, Any]]) -> str | None:
    if span.status.message:
        return span.status.message
    for event in events:
        if event["name"] == "exception":
            event_attributes = event.get("attributes", {})
            kind = event_attributes.get("exception.type")
            message = event_attributes.get("exception.message")
            if kind or message:
                return ": ".join(str(part) for part in (kind, message) if part)
    error_type = attributes.get("error.type")
    return str(error_type) if error_type else None


def map_span(span: Span, context: _Context, invalid_utf8: bool) -> MappedSpan | tuple[str, str]:
    """Map one span; return (reason, detail) instead when it must be rejected."""
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return "invalid_id", f"trace id {span.trace_id.hex()!r} is not 16 non-zero bytes"
    if len(span.span_id) != 8 or not any(span.span_id):
        return "invalid_id", f"span id {span.span_id.hex()!r} is not 8 non-zero bytes"
    start_ns, end_ns = span.start_time_unix_nano, span.end_time_unix_nano
    for label, value in (("start", start_ns), ("end", end_ns)):
        if not MIN_VALID_NS <= value < MAX_VALID_NS:
            return (
                "timestamp_out_of_range",
                f"{label} time {value} ns is outside 2000-01-01..2100-01-01; send UTC nanoseconds since the epoch",
            )

    flags: list[str] = []
    if invalid_utf8:
        flags.append("invalid_utf8")
    if end_ns < start_ns:
        flags.append("end_before_start")
    parent_span_id = ""
    if span.parent_span_id:
        parent_span_id = span.parent_span_id.hex()
        if len(span.parent_span_id) != 8:
            flags.append("invalid_parent_span_id")

    own = key_values(span.attributes)
    name = span.name
    kind = span_kind(name, own)
    attributes: dict[str, Any] = dict(own)

    provider = model = tool_name = tool_args = None
    usage = None
    reported_cost = None
    consumed: list[str] = []
    if kind == "llm":
        provider_key, provider = _first_key(own, _PROVIDER_KEYS)
        model_key, model = _first_key(own, _MODEL_KEYS)
        consumed += [key for key in (provider_key, model_key) if key]
        if model is None:
            # GenAI span names are `{operation} {gen_ai.request.model}`, e.g. `chat gpt-4o`.
            operation, _, rest = name.partition(" ")
            if operation in _INFERENCE_OPERATIONS and rest.strip():
                model = rest.strip()
        usage, usage_keys = _usage_for(attributes, flags)
        consumed += usage_keys
        cost_key, reported_cost = _reported_cost(own)
        if cost_key:
            consumed.append(cost_key)
    elif kind in ACTION_KINDS:
        tool_key, tool_name = _first_key(own, _TOOL_NAME_KEYS)
        if tool_key:
            consumed.append(tool_key)
        else:
            tool_name = _name_suffix(name, "execute_tool")
        tool_args, args_key = _tool_arguments(own)
        if args_key:
            consumed.append(args_key)
    for key in consumed:
        attributes.pop(key, None)

    events = _events(span)
    if events:
        attributes["otel.events"] = events
    links = _links(span)
    if links:
        attributes["otel.links"] = links
    attributes["otel.span_kind"] = _SPAN_KIND_NAMES.get(span.kind, "unspecified")
    if span.trace_state:
        attributes["otel.trace_state"] = span.trace_state
    if span.flags:
        attributes["otel.flags"] = span.flags
    for label, count in (
        ("otel.dropped_attributes_count", span.dropped_attributes_count),
        ("otel.dropped_events_count", span.dropped_events_count),
        ("otel.dropped_links_count", span.dropped_links_count),
    ):
        if count:
            attributes[label] = count
    if context.scope_name:
        attributes["otel.scope.name"] = context.scope_name
    if context.scope_version:
        attributes["otel.scope.version"] = context.scope_version
    if context.scope_attributes:
        attributes["otel.scope.attributes"] = context.scope_attributes
    if context.scope_schema_url:
        attributes["otel.scope.schema_url"] = context.scope_schema_url
    if context.resource_schema_url:
        attributes["otel.resource.schema_url"] = context.resource_schema_url
    attributes.update(context.resource_prefixed)
    if flags:
        attributes[FLAGS_ATTRIBUTE] = flags

    trace_hex = span.trace_id.hex()
    _, run_id = _first_key(own, _RUN_KEYS)
    if run_id is None:
        _, run_id = _first_key(context.resource, _RUN_KEYS)
    _, agent_name = _first_key(own, _AGENT_KEYS)
    return MappedSpan(
        run_id=run_id or "",
        agent_name=agent_name,
        service_name=_text(context.resource.get("service.name")),
        kind=kind,
        name=name,
        start_ns=start_ns,
        end_ns=end_ns,
        span_id=span.span_id.hex(),
        parent_span_id=parent_span_id,
        trace_id=trace_hex,
        status=_STATUS_NAMES.get(span.status.code, "unset"),
        error_message=_error_message(span, own, events),
        provider=provider,
        model=model,
        usage=usage,
        tool_name=tool_name,
        tool_args=tool_args,
        attributes=attributes,
        reported_cost_usd=reported_cost,
    )


def _tool_arguments(attributes: Mapping[str, Any]) -> tuple[str | None, str | None]:
    # Arguments arrive as JSON text or as a structured value; text is kept exactly as sent.
    for key in ("gen_ai.tool.call.arguments", "ai.toolCall.args"):
        value = attributes.get(key)
        if value is not None:
            return _text(value) if not isinstance(value, str) else value, key
    if str(attributes.get("openinference.span.kind", "")).upper() == "TOOL":
        value = attributes.get("input.value")
        if isinstance(value, str):
            return value, "input.value"
    return None, None


# --- a whole export -------------------------------------------------------------------------------

def map_traces(decoded: DecodedTraces, state: ConversionState | None = None) -> MappedTraces:
    """Map every span of a decoded export, group them per run and number their steps."""
    state = state if state is not None else ConversionState()
    mapped: list[MappedSpan] = []
    rejected: list[RejectedSpan] = []
    span_count = 0
    for r_index, resource_spans in enumerate(decoded.traces.resource_spans):
        resource = key_values(resource_spans.resource.attributes)
        resource_prefixed = {f"resource.{key}": value for key, value in resource.items()}
        for s_index, scope_spans in enumerate(resource_spans.scope_spans):
            scope = scope_spans.scope
            context = _Context(
                resource=resource,
                resource_prefixed=resource_prefixed,
                scope_name=scope.name,
                scope_version=scope.version,
                scope_attributes=key_values(scope.attributes),
                resource_schema_url=resource_spans.schema_url,
                scope_schema_url=scope_spans.schema_url,
            )
            for p_index, span in enumerate(scope_spans.spans):
                span_count += 1
                position: SpanPosition = (r_index, s_index, p_index)
                error = decoded.undecodable.get(position)
                result = ("invalid_span", error) if error else map_span(
                    span, context, position in decoded.invalid_utf8
                )
                if isinstance(result, MappedSpan):
                    mapped.append(result)
                else:
                    reason, detail = result
                    rejected.append(_reject(resource_spans, scope_spans, span, reason, detail))
    runs = group_runs(mapped, state)
    if rejected:
        logger.debug("rejected spans count=%d reasons=%s", len(rejected), sorted({r.reason for r in rejected}))
    return MappedTraces(runs=runs, rejected=rejected, span_count=span_count)


def _reject(
    resource_spans: ResourceSpans, scope_spans: ScopeSpans, span: Span, reason: str, detail: str
) -> RejectedSpan:
    export = TracesData()
    single_resource = export.resource_spans.add()
    single_resource.resource.CopyFrom(resource_spans.resource)
    single_resource.schema_url = resource_spans.schema_url
    single_scope = single_resource.scope_spans.add()
    single_scope.scope.CopyFrom(scope_spans.scope)
    single_scope.schema_url = scope_spans.schema_url
    single_scope.spans.add().CopyFrom(span)
    return RejectedSpan(span.trace_id.hex(), span.span_id.hex(), reason, detail, export)


def group_runs(spans: list[MappedSpan], state: ConversionState) -> list[RunSpans]:
    """Assign each span its run and step; return the runs in order of first appearance.

    A span without a conversation or session id joins the run that another span of its trace
    names (in this export or, through `state`, an earlier one), else the run named by its trace id.
    """
    trace_runs: dict[str, str] = {}
    for span in spans:
        if span.run_id and span.trace_id not in trace_runs:
            trace_runs[span.trace_id] = span.run_id
    runs: dict[str, RunSpans] = {}
    for span in spans:
        if not span.run_id:
            span.run_id = trace_runs.get(span.trace_id) or state.run_of_trace(span.trace_id) or span.trace_id
        state.remember_trace(span.trace_id, span.run_id)
        run = runs.get(span.run_id)
        if run is None:
            run = runs[span.run_id] = RunSpans(run_id=span.run_id, agent="")
        run.spans.append(span)
    for run in runs.values():
        run.spans = number_steps(run.spans, state.last_step(run.run_id))
        if run.spans:
            state.remember_step(run.run_id, max(span.step for span in run.spans))
        run.agent = _run_agent(run.spans)
    return list(runs.values())


def number_steps(spans: list[MappedSpan], after: int = 0) -> list[MappedSpan]:
    """Sort spans by start time and number the action spans after, after + 1, ... in that order.

    A plan or agent span takes the number of the next action that starts at or after it, or the
    last number when no action follows. On equal start times a grouping span sorts first and
    longer spans sort before shorter ones; span ids break the remaining ties.
    """
    ordered = sorted(
        spans,
        key=lambda span: (span.start_ns, span.kind in ACTION_KINDS, -span.end_ns, span.span_id),
    )
    action_total = sum(1 for span in ordered if span.kind in ACTION_KINDS)
    actions_seen = 0
    for span in ordered:
        if span.kind in ACTION_KINDS:
            actions_seen += 1
            span.step = after + actions_seen
        else:
            span.step = after + min(actions_seen + 1, max(action_total, 1))
    return ordered


def _run_agent(spans: list[MappedSpan]) -> str:
    for span in spans:
        if span.agent_name:
            return span.agent_name
    for span in spans:
        if span.service_name:
            return span.service_name
    return "unknown"
