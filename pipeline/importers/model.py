"""The neutral in-memory form every importer produces before anything is published.

Parsers return `ImportedRun` values and never touch the SDK, so they can be tested on fixtures
alone. `ImportedSpan` carries exactly the arguments of `Run.record_span` and `ImportedFrame`
those of `Run.record_frame`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from pipeline.pricing.usage import Usage

SPAN_KINDS = ("llm", "tool", "browser", "inbox", "plan", "agent")
# Kinds that count as one step of a run. Plan and agent spans only group such actions.
ACTION_KINDS = frozenset({"llm", "tool", "browser", "inbox"})
# Attribute values longer than this many characters are cut, so one prompt pasted into an
# attribute cannot make a span batch grow without bound. The cut keys are listed in
# `spanline.truncated_attributes`.
MAX_ATTRIBUTE_CHARS = 4096


class ImportFormatError(ValueError):
    """An input file does not have the shape its format requires."""


@dataclass(frozen=True)
class ImportedSpan:
    """One span, with exactly the arguments of `Run.record_span`."""

    kind: str
    name: str
    start_ns: int
    end_ns: int
    step: int
    span_id: str | None = None
    parent_span_id: str = ""
    trace_id: str | None = None
    status: str = "ok"
    error_message: str | None = None
    provider: str | None = None
    model: str | None = None
    usage: Usage | None = None
    tool_name: str | None = None
    tool_args: str | None = None
    attributes: Mapping[str, Any] | None = None
    reported_cost_usd: float | None = None

    def record_span_kwargs(self) -> dict[str, Any]:
        """Return the keyword arguments of `Run.record_span` except the three positional ones."""
        return {
            "step": self.step,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "trace_id": self.trace_id,
            "status": self.status,
            "error_message": self.error_message,
            "provider": self.provider,
            "model": self.model,
            "usage": self.usage,
            "tool_name": self.tool_name,
            "tool_args": self.tool_args,
            "attributes": self.attributes,
            "reported_cost_usd": self.reported_cost_usd,
        }


@dataclass(frozen=True)
class ImportedFrame:
    """One captured view, with exactly the arguments of `Run.record_frame`."""

    data: bytes
    step: int
    content_type: str
    kind: str = "viewport"
    capture_ns: int | None = None
    span_id: str | None = None
    width: int | None = None
    height: int | None = None


@dataclass
class ImportedRun:
    """One recorded run: its spans in start order and its frames."""

    run_id: str
    agent: str
    spans: list[ImportedSpan] = field(default_factory=list)
    frames: list[ImportedFrame] = field(default_factory=list)
    source: str = ""


_ISO_TIMESTAMP = re.compile(
    r"^(?P<head>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?)(?:\.(?P<fraction>\d+))?"
    r"(?P<zone>Z|[+-]\d{2}:?\d{2})?$"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_SECOND = timedelta(seconds=1)


def iso_to_ns(text: str) -> int:
    """Convert an ISO-8601 timestamp to UTC nanoseconds since the epoch, keeping every digit.

    `datetime` stops at microseconds, so the fraction is parsed separately. A timestamp without
    a zone is taken as UTC, the zone Langfuse writes (with a `Z` suffix). Raises ValueError on other text.
    """
    match = _ISO_TIMESTAMP.match(text.strip())
    if match is None:
        raise ValueError(f"invalid ISO-8601 timestamp {text!r}")
    zone = match.group("zone") or "+00:00"
    if zone == "Z":
        zone = "+00:00"
    moment = datetime.fromisoformat(match.group("head") + zone)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    whole_seconds = (moment - _EPOCH) // _SECOND
    fraction = (match.group("fraction") or "").ljust(9, "0")[:9]
    return whole_seconds * 1_000_000_000 + int(fraction)



def epoch_seconds_to_ns(seconds: float) -> int:
    """Convert float epoch seconds (as `time.time()` returns them) to integer nanoseconds.

    The float's shortest decimal form is scaled exactly, so 1700000001.25 gives
    1700000001250000000 and not the binary rounding error of `seconds * 1e9`.
    """
    if not math.isfinite(seconds):
        raise ValueError(f"invalid epoch timestamp {seconds!r}")
    return int((Decimal(repr(float(seconds))) * 1_000_000_000).to_integral_value(ROUND_HALF_EVEN))


def stable_hex_id(*parts: object, length: int = 16) -> str:
    """Return a hex id derived from `parts`, so importing the same file twice yields the same ids."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()
    return digest[:length]


def to_json_safe(value: Any) -> Any:
    """Return `value` with tuples, sets, bytes and other Python-only types turned into JSON types."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        return {str(key): to_json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json_safe(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return repr(value)


def cap_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """Cut attribute values longer than MAX_ATTRIBUTE_CHARS and list the cut keys."""
    truncated: list[str] = []
    capped: dict[str, Any] = {}
    for key, value in attributes.items():
        text = value if isinstance(value, str) else None
        if text is None and isinstance(value, (dict, list)):
            serialised = json.dumps(value, ensure_ascii=False)
            if len(serialised) > MAX_ATTRIBUTE_CHARS:
                text = serialised
        if text is not None and len(text) > MAX_ATTRIBUTE_CHARS:
            capped[key] = text[:MAX_ATTRIBUTE_CHARS]
            truncated.append(key)
        else:
            capped[key] = value
    if truncated:
        capped["spanline.truncated_attributes"] = truncated
    return capped


def number_steps(spans: list[ImportedSpan]) -> list[ImportedSpan]:
    """Sort spans by start time and give each its step number, from 1.

    Action spans (llm, tool, browser, inbox) are numbered 1, 2, 3 ... in start order. A plan or
    agent span takes the number of the next action that starts at or after it, or the last
    number when no action follows, so a group span sits at the step it opens. On equal start
    times a group span sorts first and longer spans sort before shorter ones.
    """
    ordered = sorted(
        spans,
        key=lambda span: (
            span.start_ns,
            0 if span.kind not in ACTION_KINDS else 1,
            -span.end_ns,
            span.span_id or "",
        ),
    )
    action_total = sum(1 for span in ordered if span.kind in ACTION_KINDS)
    numbered: list[ImportedSpan] = []
    actions_seen = 0
    for span in ordered:
        if span.kind in ACTION_KINDS:
            actions_seen += 1
            step = actions_seen
        else:
            step = min(actions_seen + 1, max(action_total, 1))
        numbered.append(replace(span, step=step))
    return numbered
