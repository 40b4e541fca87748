"""Live state of one run, folded from its span batches. Pure: no I/O, no faust.

Rules (docs/run-metrics.md explains them for users):
- p95 step latency: nearest-rank p95 over the last STEP_WINDOW steps by step number. A step's
  latency is its latest span end minus its earliest span start, over its action spans (llm, tool,
  browser, inbox). Late or out-of-order spans update the step they carry, wherever it is.
- A span whose end is before its start is counted in `flagged_spans` and left out of latency.
- Replans: the first plan-kind span of a run is the plan. Every later plan-kind span with another
  span id, and any span with attribute `spanline.replan` = true, is a replan at its step.
- Status: `failed` once a root span (no parent) of kind agent ends with status error,
  `succeeded` once a root agent span ends otherwise, `abandoned` when no span arrived for the
  idle time (decided by the caller), else `running`.
- Each message is applied at most once: the state keeps the highest offset applied, and every
  message of a run comes from one partition in offset order because the run id is the key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.pricing.usage import USAGE_CLASSES

STEP_WINDOW = 100
ACTION_KINDS = frozenset({"llm", "tool", "browser", "inbox"})
TOOL_KINDS = ("tool", "browser", "inbox")
PLANNING_KINDS = frozenset({"llm", "plan", "agent"})


def nearest_rank_percentile(values: Sequence[float], percentile: float) -> float | None:
    """Return the nearest-rank percentile: the smallest value with at least p % of values <= it.

    For n values sorted ascending that is value number ceil(p / 100 * n), counting from 1.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(percentile / 100.0 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class RunState:
    """Everything the run header shows, kept per run in a changelog-backed faust table."""

    run_id: str
    agent: str = ""
    status: str = "running"
    started_ns: int | None = None
    last_end_ns: int | None = None
    last_update_wall_ns: int = 0
    span_count: int = 0
    steps_seen: list[int] = field(default_factory=list)
    planned_steps: int | None = None
    tokens: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    unpriced_spans: int = 0
    cost_by_model_role: dict[str, float] = field(default_factory=dict)
    cost_by_kind: dict[str, float] = field(default_factory=dict)
    tool_calls: dict[str, int] = field(default_factory=dict)
    error_count: int = 0
    first_error_step: int | None = None
    plan_span_id: str | None = None
    replan_steps: list[int] = field(default_factory=list)
    # step number -> [earliest start ns, latest end ns], for the last STEP_WINDOW steps only.
    step_window: dict[str, list[int]] = field(default_factory=dict)
    p95_step_latency_s: float | None = None
    flagged_spans: int = 0
    applied_partition: int | None = None
    applied_offset: int = -1

    @property
    def step_count(self) -> int:
        return len(self.steps_seen)

    @property
    def replan_count(self) -> int:
        return len(self.replan_steps)

    @property
    def elapsed_s(self) -> float:
        if self.started_ns is None or self.last_end_ns is None:
            return 0.0
        return max(0, self.last_end_ns - self.started_ns) / 1e9

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunState":
        return cls(**data)

    def already_applied(self, partition: int, offset: int) -> bool:
        return self.applied_partition == partition and offset <= self.applied_offset

    def apply_batch(
        self,
        agent: str,
        columns: Mapping[str, Sequence[Any]],
        cost_columns: Mapping[str, Sequence[Any]],
        partition: int,
        offset: int,
        wall_ns: int,
    ) -> bool:
        """Fold one message's spans into the state; return False if the message was applied before."""
        if self.already_applied(partition, offset):
            return False
        self.agent = self.agent or agent
        attributes = [_parse_attributes(text) for text in columns.get("attributes", ())]
        for index in range(len(columns["span_id"])):
            self._apply_span(columns, cost_columns, attributes[index], index)
        self.applied_partition = partition
        self.applied_offset = offset
        self.last_update_wall_ns = wall_ns
        self._trim_window()
        self.p95_step_latency_s = self._p95_latency()
        return True

    def _apply_span(
        self,
        columns: Mapping[str, Sequence[Any]],
        cost_columns: Mapping[str, Sequence[Any]],
        attributes: Mapping[str, Any],
        index: int,
    ) -> None:
        kind = columns["kind"][index]
        step = int(columns["step"][index])
        start_ns = int(columns["start_ns"][index])
        end_ns = int(columns["end_ns"][index])
        self.span_count += 1

        if self.started_ns is None or start_ns < self.started_ns:
            self.started_ns = start_ns
        if self.last_end_ns is None or end_ns > self.last_end_ns:
            self.last_end_ns = end_ns

        for usage_class in USAGE_CLASSES:
            values = columns.get(usage_class)
            if values is not None and values[index] is not None:
                self.tokens[usage_class] = self.tokens.get(usage_class, 0) + int(values[index])

        self._apply_cost(kind, columns, cost_columns, attributes, index)

        if kind in TOOL_KINDS:
            self.tool_calls[kind] = self.tool_calls.get(kind, 0) + 1

        if columns["status"][index] == "error":
            self.error_count += 1
            if self.first_error_step is None or step < self.first_error_step:
                self.first_error_step = step

        planned = attributes.get("spanline.planned_steps")
        if isinstance(planned, int) and planned > 0:
            self.planned_steps = planned

        self._apply_replan(kind, columns["span_id"][index], step, attributes)
        self._apply_status(kind, columns["parent_span_id"][index], columns["status"][index])

        if kind in ACTION_KINDS:
            if step not in self.steps_seen:
                self.steps_seen.append(step)
                self.steps_seen.sort()
            if end_ns < start_ns:
                self.flagged_spans += 1
                return
            bounds = self.step_window.get(str(step))
            if bounds is None:
                self.step_window[str(step)] = [start_ns, end_ns]
            else:
                bounds[0] = min(bounds[0], start_ns)
                bounds[1] = max(bounds[1], end_ns)

    def _apply_cost(
        self,
        kind: str,
        columns: Mapping[str, Sequence[Any]],
        cost_columns: Mapping[str, Sequence[Any]],
        attributes: Mapping[str, Any],
        index: int,
    ) -> None:
        costs = cost_columns.get("cost_usd")
        cost = costs[index] if costs is not None else None
        status = cost_columns.get("pricing_status")
        if status is not None and status[index] == "unpriced":
            self.unpriced_spans += 1
        if cost is None:
            return
        self.cost_usd += cost
        model = columns["model"][index] or "-"
        role = attributes.get("spanline.role") or attributes.get("gen_ai.agent.name") or kind
        ledger_key = f"{model}|{role}"
        self.cost_by_model_role[ledger_key] = self.cost_by_model_role.get(ledger_key, 0.0) + cost
        self.cost_by_kind[kind] = self.cost_by_kind.get(kind, 0.0) + cost

    def _apply_replan(
        self, kind: str, span_id: str, step: int, attributes: Mapping[str, Any]
    ) -> None:
        marked = attributes.get("spanline.replan") is True
        if kind == "plan" and not marked:
            if self.plan_span_id is None:
                self.plan_span_id = span_id
                return
            if span_id == self.plan_span_id:
                return
        elif not marked:
            return
        self.replan_steps.append(step)
        self.replan_steps.sort()

    def _apply_status(self, kind: str, parent_span_id: str, status: str) -> None:
        if kind == "agent" and not parent_span_id:
            self.status = "failed" if status == "error" else "succeeded"

    def _trim_window(self) -> None:
        if len(self.step_window) <= STEP_WINDOW:
            return
        newest = sorted(self.step_window, key=int)[-STEP_WINDOW:]
        self.step_window = {step: self.step_window[step] for step in newest}

    def _p95_latency(self) -> float | None:
        durations = [(end - start) / 1e9 for start, end in self.step_window.values()]
        return nearest_rank_percentile(durations, 95.0)

    def planning_and_tools_cost(self) -> tuple[float, float]:
        """Return (planning cost, tool cost): llm, plan and agent spans against tool kinds."""
        planning = sum(cost for kind, cost in self.cost_by_kind.items() if kind in PLANNING_KINDS)
        tools = sum(cost for kind, cost in self.cost_by_kind.items() if kind in TOOL_KINDS)
        return planning, tools

    def ledger(self) -> list[dict[str, Any]]:
        """Return cost by model and role, largest first, with each entry's share of the total."""
        total = sum(self.cost_by_model_role.values())
        entries = []
        for key, cost in sorted(self.cost_by_model_role.items(), key=lambda item: -item[1]):
            model, _, role = key.partition("|")
            share = cost / total if total > 0 else 0.0
            entries.append({"model": model, "role": role, "cost_usd": cost, "share": share})
        return entries


def _parse_attributes(text: str | None) -> Mapping[str, Any]:
    if not text or text == "{}":
        return {}
    try:
        parsed = json.loads(text)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
