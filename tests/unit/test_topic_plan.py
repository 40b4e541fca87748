"""The JSON topic plan that the Helm chart's topics Job passes to `spanline stack topics`."""

from __future__ import annotations

import json

import pytest

from pipeline.stack.topics import TopicPlanError, parse_topic_plan


def entry(name: str, partitions: int = 4, replication: int = 3, config: dict | None = None) -> dict:
    return {"name": name, "partitions": partitions, "replicationFactor": replication, "config": config or {}}


def test_plan_entries_become_topic_specs() -> None:
    plan = {
        "spans": entry("team.spans", 8, 3, {"retention.ms": 86400000}),
        "runs": entry("team.runs", 8, 3, {"cleanup.policy": "compact"}),
    }
    specs = {spec.name: spec for spec in parse_topic_plan(json.dumps(plan))}

    assert specs["team.spans"].partitions == 8
    assert specs["team.spans"].replication_factor == 3
    assert specs["team.spans"].configs == {"retention.ms": "86400000"}
    assert specs["team.runs"].configs == {"cleanup.policy": "compact"}


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ("not json", "not valid JSON"),
        ("[]", "non-empty JSON object"),
        (json.dumps({"spans": "spanline.spans.v1"}), "'spans' must be an object"),
        (json.dumps({"spans": entry("")}), "'spans' has no name"),
        (json.dumps({"spans": entry("s", partitions=0)}), "partitions=0"),
        (json.dumps({"spans": entry("s", replication=True)}), "replicationFactor=True"),
        (json.dumps({"spans": {**entry("s"), "config": ["a"]}}), "config must be an object"),
        (json.dumps({"spans": entry("s", 8), "spansEnriched": entry("e", 8), "runs": entry("r", 4)}), "equal partition counts"),
    ],
)
def test_invalid_plan_is_rejected(plan: str, message: str) -> None:
    with pytest.raises(TopicPlanError, match=message):
        parse_topic_plan(plan)
