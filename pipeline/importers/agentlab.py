"""AgentLab / BrowserGym episodes (`{"experiment", "summary_info", "steps": [...]}`) into runs.

BrowserGym records in step i the observation after the previous action ran, the action the agent
chose on it (`action`), the agent's LLM statistics (`agent_info.stats`) and timestamps
(`profiling`). In those timestamps `action_exec_*` time the *previous* action, and `agent_*` time
the LLM call of this step. So the action chosen at step i ran during step i+1's
`action_exec_start..stop`, and its error is step i+1's `obs.last_action_error`. The last step
carries no action.

Each agent step i becomes, at step number i+1:

- an `llm` span over `agent_start..agent_stop`, provider `openai` and the model from
  `chat_model_args`. AgentLab's `input_tokens`/`output_tokens` are the OpenAI Chat Completions
  `prompt_tokens`/`completion_tokens`, so the `openai.chat` usage rule applies. AgentLab's `cost` is
  computed by AgentLab from its own price table, not reported by OpenAI, so it is kept as the
  attribute `agentlab.cost_usd` and never as `reported_cost_usd`.
- a `browser` span for the action, with tool_name the action function (`click`) and tool_args the
  JSON of its arguments named as BrowserGym names them (`{"bid": "30"}`).

One root `agent` span covers the episode. The files hold no screenshots, so runs have no frames.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from pipeline.importers.model import (
    ImportedRun,
    ImportedSpan,
    ImportFormatError,
    cap_attributes,
    epoch_seconds_to_ns,
    stable_hex_id,
    to_json_safe,
)
from pipeline.pricing.usage import normalise_usage

logger = logging.getLogger(__name__)

FORMAT_NAME = "agentlab"

# Parameter names of BrowserGym's high-level action set, so tool_args name each argument.
ACTION_PARAMETERS: dict[str, tuple[str, ...]] = {
    "click": ("bid", "button", "modifiers"),
    "dblclick": ("bid", "button", "modifiers"),
    "hover": ("bid",),
    "fill": ("bid", "value"),
    "clear": ("bid",),
    "check": ("bid",),
    "uncheck": ("bid",),
    "focus": ("bid",),
    "press": ("bid", "key_comb"),
    "select_option": ("bid", "options"),
    "drag_and_drop": ("from_bid", "to_bid"),
    "upload_file": ("bid", "file"),
    "scroll": ("delta_x", "delta_y"),
    "goto": ("url",),
    "go_back": (),
    "go_forward": (),
    "new_tab": (),
    "tab_close": (),
    "tab_focus": ("index",),
    "noop": ("wait_ms",),
    "send_msg_to_user": ("text",),
    "report_infeasible": ("reason",),
    "mouse_move": ("x", "y"),
    "mouse_click": ("x", "y", "button"),
    "mouse_dblclick": ("x", "y", "button"),
    "mouse_down": ("x", "y", "button"),
    "mouse_up": ("x", "y", "button"),
    "keyboard_press": ("key",),
    "keyboard_type": ("text",),
}
_EXPERIMENT = re.compile(r"^\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}_(?P<agent>.+?)_on_(?P<task>.+?)(?:_(?P<seed>\d+))?$")


def looks_like(document: Any) -> bool:
    """Return True when a decoded JSON document has the AgentLab episode shape."""
    if not isinstance(document, Mapping) or not isinstance(document.get("steps"), list):
        return False
    if "summary_info" in document or "experiment" in document:
        return True
    steps = document["steps"]
    return bool(steps) and isinstance(steps[0], Mapping) and ("state" in steps[0] or "profiling" in steps[0])


def parse_action(text: str) -> tuple[str | None, str | None, list[dict[str, Any]]]:
    """Split an action string such as `click('30')` into its name, JSON arguments and all calls.

    Returns (name of the first call, JSON of its named arguments, every call as
    `{"name", "args"}`). Text that is not a sequence of literal-argument calls gives
    (None, None, []).
    """
    try:
        tree = ast.parse(text.strip(), mode="exec")
    except SyntaxError:
        return None, None, []
    calls: list[dict[str, Any]] = []
    for statement in tree.body:
        if not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)):
            return None, None, []
        call = statement.value
        if not isinstance(call.func, ast.Name):
            return None, None, []
        try:
            positional = [ast.literal_eval(argument) for argument in call.args]
            keywords = {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords if keyword.arg}
        except ValueError:
            return None, None, []
        names = ACTION_PARAMETERS.get(call.func.id, ())
        arguments: dict[str, Any] = {}
        for position, value in enumerate(positional):
            arguments[names[position] if position < len(names) else f"arg{position}"] = value
        arguments.update(keywords)
        calls.append({"name": call.func.id, "args": to_json_safe(arguments)})
    if not calls:
        return None, None, []
    first = calls[0]
    return first["name"], json.dumps(first["args"], ensure_ascii=False), calls


def parse(document: Any, *, source: str = "", agent: str | None = None) -> list[ImportedRun]:
    """Convert one AgentLab episode into one run.

    Raises ImportFormatError naming the step when its timestamps or statistics are invalid.
    """
    if not looks_like(document):
        raise ImportFormatError("not an AgentLab episode: expected a JSON object with a 'steps' list")
    experiment = str(document.get("experiment") or source.rsplit("/", 1)[-1])
    match = _EXPERIMENT.match(experiment.removesuffix(".steps.json"))
    agent_name = agent or (match.group("agent") if match else None) or "agentlab-agent"
    task = match.group("task") if match else None
    run_id = stable_hex_id("agentlab", experiment, length=32)

    states = [_state(step, index) for index, step in enumerate(document["steps"])]
    spans: list[ImportedSpan] = []
    root_id = stable_hex_id(run_id, "episode")
    for index, state in enumerate(states):
        action = state.get("action")
        if not action:
            continue
        following = states[index + 1] if index + 1 < len(states) else None
        step_number = len(spans) // 2 + 1
        spans.append(_llm_span(state, index, run_id, root_id, step_number, experiment))
        spans.append(_browser_span(state, following, index, run_id, root_id, step_number))

    spans.insert(0, _episode_span(document, states, run_id, root_id, experiment, task, spans))
    return [ImportedRun(run_id=run_id, agent=agent_name, spans=spans, source=source)]


def _state(step: Any, index: int) -> Mapping[str, Any]:
    # Steps are pickled StepInfo objects turned into {"__class__", "state"}. A bare state is accepted too.
    if not isinstance(step, Mapping):
        raise ImportFormatError(f"step #{index} is a {type(step).__name__}, expected an object")
    state = step.get("state", step)
    if not isinstance(state, Mapping):
        raise ImportFormatError(f"step #{index} has a 'state' that is not an object")
    return state


def _profiling(state: Mapping[str, Any], index: int) -> Mapping[str, Any]:
    profiling = state.get("profiling") or {}
    if isinstance(profiling, Mapping) and isinstance(profiling.get("state"), Mapping):
        profiling = profiling["state"]
    if not isinstance(profiling, Mapping):
        raise ImportFormatError(f"step #{index} has a 'profiling' that is not an object")
    return profiling


def _timestamp_ns(profiling: Mapping[str, Any], key: str, index: int) -> int | None:
    value = profiling.get(key)
    # AgentLab writes 0 for phases that did not happen (the agent phase of the last step).
    if value in (None, 0, 0.0):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ImportFormatError(f"step #{index}: profiling.{key}={value!r} is not epoch seconds")
    try:
        return epoch_seconds_to_ns(float(value))
    except ValueError as error:
        raise ImportFormatError(f"step #{index}: profiling.{key}: {error}") from None


def _agent_info(state: Mapping[str, Any]) -> Mapping[str, Any]:
    info = state.get("agent_info") or {}
    if isinstance(info, Mapping) and isinstance(info.get("state"), Mapping):
        info = info["state"]
    return info if isinstance(info, Mapping) else {}


def _llm_span(
    state: Mapping[str, Any], index: int, run_id: str, root_id: str, step_number: int, experiment: str
) -> ImportedSpan:
    profiling = _profiling(state, index)
    start_ns = _timestamp_ns(profiling, "agent_start", index)
    end_ns = _timestamp_ns(profiling, "agent_stop", index)
    if start_ns is None or end_ns is None:
        raise ImportFormatError(f"step #{index} has an action but no profiling.agent_start/agent_stop")

    info = _agent_info(state)
    stats = state.get("stats") if isinstance(state.get("stats"), Mapping) else info.get("stats") or {}
    model_args = (info.get("extra_info") or {}).get("chat_model_args") or {}
    attributes: dict[str, Any] = {"agentlab.experiment": experiment, "agentlab.step": state.get("step", index)}
    usage = None
    if isinstance(stats, Mapping) and ("input_tokens" in stats or "output_tokens" in stats):
        try:
            usage = normalise_usage(
                "openai.chat",
                {"prompt_tokens": stats.get("input_tokens"), "completion_tokens": stats.get("output_tokens")},
            )
        except ValueError as error:
            raise ImportFormatError(f"step #{index}: invalid token counts in stats: {error}") from None
    for key in ("cost", "n_retry_llm", "n_retry", "busted_retry"):
        if isinstance(stats, Mapping) and stats.get(key) is not None:
            attributes["agentlab.cost_usd" if key == "cost" else f"agentlab.{key}"] = stats[key]
    for key in ("temperature", "max_new_tokens", "deployment_name"):
        if model_args.get(key) is not None:
            attributes[f"agentlab.model.{key}"] = model_args[key]
    if info.get("think"):
        attributes["agentlab.think"] = info["think"]

    return ImportedSpan(
        kind="llm",
        name=f"choose action {step_number}",
        start_ns=start_ns,
        end_ns=max(end_ns, start_ns),
        step=step_number,
        span_id=stable_hex_id(run_id, index, "llm"),
        parent_span_id=root_id,
        trace_id=run_id,
        provider="openai",
        model=model_args.get("model_name") or model_args.get("deployment_name"),
        usage=usage,
        attributes=cap_attributes(to_json_safe(attributes)),
    )


def _browser_span(
    state: Mapping[str, Any],
    following: Mapping[str, Any] | None,
    index: int,
    run_id: str,
    root_id: str,
    step_number: int,
) -> ImportedSpan:
    action_text = str(state["action"])
    tool_name, tool_args, calls = parse_action(action_text)
    observation = following.get("obs") if following is not None else None
    observation = observation if isinstance(observation, Mapping) else {}
    attributes: dict[str, Any] = {"agentlab.action": action_text}
    if len(calls) > 1:
        attributes["agentlab.action_calls"] = calls
    if tool_name is None:
        attributes["spanline.unparsed_action"] = True
    for key in ("url", "goal", "focused_element_bid"):
        if observation.get(key):
            attributes[f"browser.{key}"] = observation[key]

    start_ns = end_ns = None
    if following is not None:
        profiling = _profiling(following, index + 1)
        start_ns = _timestamp_ns(profiling, "action_exec_start", index + 1)
        end_ns = _timestamp_ns(profiling, "action_exec_stop", index + 1)
    if start_ns is None or end_ns is None:
        # NOTE: an episode cut before the action ran has no execution time, so the span is
        # placed at the end of the LLM call with zero length.
        start_ns = end_ns = _timestamp_ns(_profiling(state, index), "agent_stop", index) or 0
        attributes["spanline.missing_action_timing"] = True

    status, error_message = "ok", None
    action_error = observation.get("last_action_error")
    if action_error:
        status, error_message = "error", str(action_error)
    return ImportedSpan(
        kind="browser",
        name=tool_name or "action",
        start_ns=start_ns,
        end_ns=max(end_ns, start_ns),
        step=step_number,
        span_id=stable_hex_id(run_id, index, "browser"),
        parent_span_id=root_id,
        trace_id=run_id,
        status=status,
        error_message=error_message,
        tool_name=tool_name,
        tool_args=tool_args,
        attributes=cap_attributes(to_json_safe(attributes)),
    )


def _episode_span(
    document: Mapping[str, Any],
    states: list[Mapping[str, Any]],
    run_id: str,
    root_id: str,
    experiment: str,
    task: str | None,
    children: list[ImportedSpan],
) -> ImportedSpan:
    starts = [span.start_ns for span in children]
    stops = [span.end_ns for span in children]
    for index, state in enumerate(states):
        profiling = _profiling(state, index)
        env_start = _timestamp_ns(profiling, "env_start", index)
        env_stop = _timestamp_ns(profiling, "env_stop", index)
        if env_start is not None:
            starts.append(env_start)
        if env_stop is not None:
            stops.append(env_stop)
    if not starts:
        raise ImportFormatError("the episode has no timestamps in any step's profiling")

    summary = document.get("summary_info") if isinstance(document.get("summary_info"), Mapping) else {}
    goal = next((s["obs"].get("goal") for s in states if isinstance(s.get("obs"), Mapping)), None)
    attributes: dict[str, Any] = {"agentlab.experiment": experiment}
    if task:
        attributes["agentlab.task"] = task
    if goal:
        attributes["agentlab.goal"] = goal
    for key in ("n_steps", "cum_reward", "terminated", "truncated", "stats.cum_cost",
                "stats.cum_input_tokens", "stats.cum_output_tokens"):
        if summary.get(key) is not None:
            attributes[f"agentlab.summary.{key}"] = summary[key]

    error_message = summary.get("err_msg")
    return ImportedSpan(
        kind="agent",
        name=f"episode {task}" if task else "episode",
        start_ns=min(starts),
        end_ns=max(stops + starts),
        step=1,
        span_id=root_id,
        parent_span_id="",
        trace_id=run_id,
        status="error" if error_message else "ok",
        error_message=str(error_message) if error_message else None,
        attributes=cap_attributes(to_json_safe(attributes)),
    )
