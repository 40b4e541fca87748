"""Timestamps, ids and step numbering shared by every importer."""

from __future__ import annotations

import pytest

from pipeline.importers.model import (
    MAX_ATTRIBUTE_CHARS,
    ImportedSpan,
    cap_attributes,
    epoch_seconds_to_ns,
    iso_to_ns,
    number_steps,
    stable_hex_id,
    to_json_safe,
)

EPOCH_2025_03_01 = 1_740_787_200_000_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-01T00:00:00Z", EPOCH_2025_03_01),
        ("2025-03-01T00:00:00.598Z", EPOCH_2025_03_01 + 598_000_000),
        ("2025-03-01T00:00:00.123456789Z", EPOCH_2025_03_01 + 123_456_789),
        ("2025-03-01T00:00:00.1234567891Z", EPOCH_2025_03_01 + 123_456_789),
        ("2025-03-01T02:00:00.5+02:00", EPOCH_2025_03_01 + 500_000_000),
        ("2025-02-28T19:00:00-05:00", EPOCH_2025_03_01),
        ("2025-03-01T00:00:00", EPOCH_2025_03_01),
    ],
)
def test_iso_to_ns_keeps_every_digit(text: str, expected: int) -> None:
    assert iso_to_ns(text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2025-13-01T00:00:00Z", "2025-03-01T00:00:00.Z"])
def test_iso_to_ns_rejects_invalid_text(text: str) -> None:
    with pytest.raises(ValueError):
        iso_to_ns(text)


def test_epoch_seconds_scale_exactly() -> None:
    assert epoch_seconds_to_ns(1_700_000_001.25) == 1_700_000_001_250_000_000
    assert epoch_seconds_to_ns(1_737_561_832.2906132) == 1_737_561_832_290_613_200
    assert epoch_seconds_to_ns(0) == 0


def test_epoch_seconds_reject_nan() -> None:
    with pytest.raises(ValueError):
        epoch_seconds_to_ns(float("nan"))


def test_stable_hex_id_is_deterministic() -> None:
    first = stable_hex_id("run", 1, "llm")
    assert first == stable_hex_id("run", 1, "llm")
    assert first != stable_hex_id("run", 2, "llm")
    assert len(first) == 16
    assert int(first, 16) >= 0
    assert len(stable_hex_id("x", length=32)) == 32


def test_to_json_safe_converts_python_types() -> None:
    converted = to_json_safe({"tuple": (1, 2), "set": {3}, "bytes": b"ok", "nan": float("nan"), 4: None})
    assert converted == {"tuple": [1, 2], "set": [3], "bytes": "ok", "nan": "nan", "4": None}


def test_cap_attributes_cuts_and_lists_long_values() -> None:
    capped = cap_attributes({"short": "x", "long": "y" * (MAX_ATTRIBUTE_CHARS + 10), "number": 5})
    assert capped["short"] == "x"
    assert capped["number"] == 5
    assert len(capped["long"]) == MAX_ATTRIBUTE_CHARS
    assert capped["spanline.truncated_attributes"] == ["long"]


def _span(kind: str, start_ns: int, end_ns: int, span_id: str) -> ImportedSpan:
    return ImportedSpan(kind=kind, name=span_id, start_ns=start_ns, end_ns=end_ns, step=0, span_id=span_id)


def test_number_steps_counts_actions_only() -> None:
    spans = [
        _span("llm", 30, 40, "second-llm"),
        _span("agent", 0, 100, "root"),
        _span("llm", 10, 20, "first-llm"),
        _span("plan", 25, 26, "plan-between"),
        _span("tool", 21, 24, "tool"),
        _span("plan", 90, 95, "plan-after-last"),
    ]
    steps = {span.span_id: span.step for span in number_steps(spans)}
    assert steps["root"] == 1
    assert steps["first-llm"] == 1
    assert steps["tool"] == 2
    assert steps["plan-between"] == 3
    assert steps["second-llm"] == 3
    assert steps["plan-after-last"] == 3


def test_number_steps_sorts_by_start() -> None:
    spans = [_span("llm", 30, 40, "b"), _span("agent", 10, 50, "a"), _span("llm", 10, 20, "c")]
    ordered = [span.span_id for span in number_steps(spans)]
    assert ordered == ["a", "c", "b"]


def test_number_steps_without_actions_uses_step_one() -> None:
    spans = [_span("agent", 0, 10, "a"), _span("plan", 5, 6, "b")]
    assert [span.step for span in number_steps(spans)] == [1, 1]
