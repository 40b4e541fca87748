"""Run, step and span handles: they number steps, generate ids and turn spans into column rows."""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pipeline.pricing.usage import USAGE_CLASSES, Usage
from pipeline.wire.spans import SPAN_FIELDS

if TYPE_CHECKING:
    from pipeline.sdk.tracer import Tracer

logger = logging.getLogger(__name__)

SPAN_KINDS = frozenset({"llm", "tool", "browser", "inbox", "plan", "agent"})
SPAN_STATUSES = frozenset({"ok", "error", "unset"})
FRAME_KINDS = frozenset({"viewport", "inbox"})

# Order of the values in one buffered row; the tracer appends value i to column ROW_FIELDS[i].
ROW_FIELDS: tuple[str, ...] = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "step",
    "kind",
    "name",
    "start_ns",
    "end_ns",
    "status",
    "error_message",
    "provider",
    "model",
    *USAGE_CLASSES,
    "usage_source",
    "reported_cost_usd",
    "tool_name",
    "tool_args",
    "attributes",
)
# Columns the schema has beyond ROW_FIELDS are filled with their defaults by the encoder.
_unknown_row_fields = set(ROW_FIELDS) - set(SPAN_FIELDS)
if _unknown_row_fields:
    raise ImportError(f"SDK row fields {sorted(_unknown_row_fields)} are not in schemas/span_batch.avsc")

_NO_USAGE = (None,) * len(USAGE_CLASSES)

# Span keyword arguments with a column of their own; any other keyword becomes an attribute.
_SPAN_FIELD_KEYWORDS = frozenset(
    {"provider", "model", "usage", "tool_name", "tool_args", "attributes", "reported_cost_usd"}
)

_current_span: contextvars.ContextVar[Span | None] = contextvars.ContextVar(
    "spanline_current_span", default=None
)


class InvalidSpanError(ValueError):
    """A span value that cannot go on the wire; the tracer drops the span and logs this."""


def new_trace_id() -> str:
    return uuid.uuid4().hex


def new_span_id() -> str:
    return os.urandom(8).hex()


def _optional_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidSpanError(f"{name}={value!r} is not a whole number") from None


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _tool_args_text(tool_args: Any) -> str | None:
    # Text is kept byte for byte, even when it is not valid JSON: that is what the model sent.
    if tool_args is None or isinstance(tool_args, str):
        return tool_args
    if isinstance(tool_args, (bytes, bytearray)):
        return bytes(tool_args).decode("utf-8", errors="replace")
    return json.dumps(tool_args, ensure_ascii=False, default=str)


def _attributes_text(attributes: Mapping[str, Any] | None) -> str:
    if not attributes:
        return "{}"
    return json.dumps(dict(attributes), ensure_ascii=False, separators=(",", ":"), default=str)


def build_row(
    *,
    trace_id: str,
    span_id: str,
    parent_span_id: str | None,
    step: int,
    kind: str,
    name: str,
    start_ns: int,
    end_ns: int,
    status: str,
    error_message: str | None,
    provider: str | None,
    model: str | None,
    usage: Usage | None,
    reported_cost_usd: float | None,
    tool_name: str | None,
    tool_args: Any,
    attributes: Mapping[str, Any] | None,
) -> tuple[Any, ...]:
    """Check and convert one span's values into a row in ROW_FIELDS order.

    Raises InvalidSpanError for a value the schema cannot carry, so one bad span never makes a
    whole batch unencodable.
    """
    if kind not in SPAN_KINDS:
        raise InvalidSpanError(f"span kind {kind!r} is not one of {sorted(SPAN_KINDS)}")
    if status not in SPAN_STATUSES:
        raise InvalidSpanError(f"span status {status!r} is not one of {sorted(SPAN_STATUSES)}")
    if usage is None:
        tokens: tuple[int | None, ...] = _NO_USAGE
        usage_source = None
    else:
        if not isinstance(usage, Usage):
            raise InvalidSpanError(f"usage {usage!r} is not a pipeline.pricing.usage.Usage")
        tokens = tuple(_optional_int(getattr(usage, name), name) for name in USAGE_CLASSES)
        usage_source = usage.source
    cost = None if reported_cost_usd is None else float(reported_cost_usd)
    if cost is not None and not math.isfinite(cost):
        raise InvalidSpanError(f"reported_cost_usd={reported_cost_usd!r} is not a finite number")
    return (
        str(trace_id),
        str(span_id),
        parent_span_id or "",
        int(step),
        kind,
        str(name),
        int(start_ns),
        int(end_ns),
        status,
        _optional_str(error_message),
        _optional_str(provider),
        _optional_str(model),
        *tokens,
        usage_source,
        cost,
        _optional_str(tool_name),
        _tool_args_text(tool_args),
        _attributes_text(attributes),
    )


def _describe_exception(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class Run:
    """One agent run: numbers its steps from 1 and its frames from 0, and owns the trace id.

    With `root_span` (the default) the run is itself a span of kind agent, from its creation to
    `close()`, and the parent of every span that has no other parent. The runs worker decides a
    run succeeded or failed when that span arrives; without it the run stays running until it is
    abandoned. Importers turn it off because a recording brings its own root span, or none.
    """

    def __init__(
        self, tracer: Tracer, agent: str, run_id: str | None = None, *, root_span: bool = True
    ) -> None:
        self.tracer = tracer
        self.agent = agent
        self.run_id = run_id or uuid.uuid4().hex
        self.trace_id = new_trace_id()
        self.root_span_id = new_span_id() if root_span else ""
        self.start_ns = time.time_ns()
        self.status = "ok"
        self.error_message: str | None = None
        # itertools.count's next() is atomic under the GIL, so threads of one run share it safely.
        self._step_numbers = itertools.count(1)
        self._frame_seqs = itertools.count(0)
        self.closed = False

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if exc is not None and self.error_message is None:
            self.set_error(_describe_exception(exc))
        self.close()
        return False

    def set_error(self, message: str) -> None:
        """Mark the run as failed with `message` without an exception. Its root span carries it."""
        self.status = "error"
        self.error_message = message

    def close(self) -> None:
        """End the run: record its root span and send its buffered spans now.

        Spans recorded after this still go out with a later flush. A second call does nothing.
        """
        if self.closed:
            return
        self.closed = True
        if self.root_span_id:
            self.record_span(
                "agent",
                self.agent,
                self.start_ns,
                time.time_ns(),
                step=1,
                span_id=self.root_span_id,
                parent_span_id="",
                status=self.status,
                error_message=self.error_message,
            )
        self.tracer._close_run(self)

    def step(self) -> Step:
        """Start the next step; step numbers count from 1."""
        return Step(self, next(self._step_numbers))

    def next_frame_seq(self) -> int:
        return next(self._frame_seqs)

    def record_span(
        self,
        kind: str,
        name: str,
        start_ns: int,
        end_ns: int,
        *,
        step: int,
        span_id: str | None = None,
        parent_span_id: str | None = None,
        trace_id: str | None = None,
        status: str = "ok",
        error_message: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        usage: Usage | None = None,
        tool_name: str | None = None,
        tool_args: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        reported_cost_usd: float | None = None,
    ) -> str:
        """Record a finished span with given timings and ids, as importers of recorded runs do.

        Returns the span id (generated when not given). `parent_span_id` None means the run's
        root span; "" makes the span a root itself. Invalid values are logged and the span is
        dropped and counted; nothing is raised.
        """
        if span_id is None:
            span_id = new_span_id()
        if parent_span_id is None:
            parent_span_id = self.root_span_id
        try:
            row = build_row(
                trace_id=trace_id or self.trace_id,
                span_id=span_id,
                parent_span_id=parent_span_id,
                step=step,
                kind=kind,
                name=name,
                start_ns=start_ns,
                end_ns=end_ns,
                status=status,
                error_message=error_message,
                provider=provider,
                model=model,
                usage=usage,
                reported_cost_usd=reported_cost_usd,
                tool_name=tool_name,
                tool_args=tool_args,
                attributes=attributes,
            )
        except Exception as error:  # InvalidSpanError, or a conversion failing on a caller's value
            self.tracer._drop_invalid_span(self, span_id, step, error)
            return span_id
        self.tracer._append_span(self, row)
        return span_id

    def record_frame(
        self,
        data: bytes,
        *,
        step: int,
        content_type: str,
        kind: str = "viewport",
        capture_ns: int | None = None,
        span_id: str | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> str:
        """Send one captured view (one Kafka message) and return the SHA-256 hex of `data`.

        Returns "" when `data` is not bytes-like; that frame is dropped and counted.

        The frame takes the run's next seq even when it is dropped, so a gap in seq shows a loss.
        """
        return self.tracer._send_frame(
            self,
            data,
            step=step,
            content_type=content_type,
            kind=kind,
            capture_ns=time.time_ns() if capture_ns is None else capture_ns,
            span_id=span_id,
            width=width,
            height=height,
        )


class Step:
    """One step of a run; spans and frames created through it carry its number."""

    def __init__(self, run: Run, number: int) -> None:
        self.run = run
        self.number = number

    def __enter__(self) -> Step:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        return False

    def span(self, kind: str, name: str, **fields: Any) -> Span:
        """Create a span context manager timed from `with` entry to exit.

        Keywords provider, model, usage, tool_name, tool_args, attributes and reported_cost_usd set
        those fields; any other keyword becomes an attribute.
        """
        return Span(self, kind, name, fields)

    def frame(
        self,
        data: bytes,
        *,
        content_type: str,
        kind: str = "viewport",
        capture_ns: int | None = None,
        span_id: str | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> str:
        """Send a frame of this step; `span_id` defaults to the enclosing span of this run."""
        if span_id is None:
            current = _current_span.get()
            if current is not None and current.run is self.run:
                span_id = current.span_id
        return self.run.record_frame(
            data,
            step=self.number,
            content_type=content_type,
            kind=kind,
            capture_ns=capture_ns,
            span_id=span_id,
            width=width,
            height=height,
        )


class Span:
    """A span being timed; it is recorded when its `with` block exits.

    An exception inside the block marks the span as an error and propagates unchanged.
    """

    def __init__(self, step: Step, kind: str, name: str, fields: Mapping[str, Any]) -> None:
        self.run = step.run
        self.step = step.number
        self.kind = kind
        self.name = name
        self.span_id = new_span_id()
        self.parent_span_id = ""
        self.start_ns = 0
        self.end_ns = 0
        self.status = "ok"
        self.error_message: str | None = None
        self.provider: str | None = fields.get("provider")
        self.model: str | None = fields.get("model")
        self.usage: Usage | None = fields.get("usage")
        self.tool_name: str | None = fields.get("tool_name")
        self.tool_args: str | None = fields.get("tool_args")
        self.reported_cost_usd: float | None = fields.get("reported_cost_usd")
        self.attributes: dict[str, Any] = dict(fields.get("attributes") or {})
        for key, value in fields.items():
            if key not in _SPAN_FIELD_KEYWORDS:
                self.attributes[key] = value
        self._token: contextvars.Token[Span | None] | None = None

    def __enter__(self) -> Span:
        parent = _current_span.get()
        if parent is not None and parent.run is self.run:
            self.parent_span_id = parent.span_id
        else:
            self.parent_span_id = self.run.root_span_id
        self._token = _current_span.set(self)
        self.start_ns = time.time_ns()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        self.end_ns = time.time_ns()
        if self._token is not None:
            try:
                _current_span.reset(self._token)
            except ValueError:
                # The block exited in another context (a generator or task switch); the previous
                # span there is unknown, so the current span is cleared instead.
                _current_span.set(None)
        if exc is not None:
            self.status = "error"
            if self.error_message is None:
                self.error_message = _describe_exception(exc)
        self.run.record_span(
            self.kind,
            self.name,
            self.start_ns,
            self.end_ns,
            step=self.step,
            span_id=self.span_id,
            parent_span_id=self.parent_span_id,
            status=self.status,
            error_message=self.error_message,
            provider=self.provider,
            model=self.model,
            usage=self.usage,
            tool_name=self.tool_name,
            tool_args=self.tool_args,
            attributes=self.attributes,
            reported_cost_usd=self.reported_cost_usd,
        )
        return False

    def set_usage(self, usage: Usage) -> None:
        self.usage = usage

    def set_model(self, provider: str | None, model: str | None) -> None:
        self.provider = provider
        self.model = model

    def set_tool(self, name: str, args_json_text: str | None) -> None:
        """Set the tool name and its arguments, kept as the exact text that was sent."""
        self.tool_name = name
        self.tool_args = args_json_text

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def set_reported_cost(self, usd: float | None) -> None:
        self.reported_cost_usd = usd

    def set_error(self, message: str) -> None:
        """Mark the span as failed with `message`, without an exception."""
        self.status = "error"
        self.error_message = message
