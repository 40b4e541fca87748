"""Our cost of each Langfuse GENERATION observation against the totalCost Langfuse computed.

The agreement table and the reasons for the differences are in docs/pricing.md; the test fixes
the counts so a change in rules or price data shows up.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from pipeline.pricing.prices import PriceBook, cost
from pipeline.pricing.usage import normalise_usage

SHARED_DATA = Path(
    os.environ.get("SPANLINE_SHARED_DATA")
    or Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
)
EXPORTS = SHARED_DATA / "runs" / "langfuse-exports"

pytestmark = pytest.mark.skipif(not EXPORTS.is_dir(), reason=f"real data not found at {EXPORTS}")


def compare_generations() -> list[dict]:
    """Return one row per GENERATION: file, model, ours, Langfuse's and the outcome."""
    book = PriceBook()
    rows = []
    for path in sorted(EXPORTS.glob("*.json")):
        export = json.loads(path.read_text(encoding="utf-8"))
        for observation in export["observations"]:
            if observation.get("type") != "GENERATION":
                continue
            usage = normalise_usage("langfuse", observation.get("usageDetails"))
            at = datetime.fromisoformat(observation["startTime"].replace("Z", "+00:00"))
            entry = book.resolve(None, observation.get("model"), at)
            theirs = observation.get("totalCost")
            ours = float(cost(usage, entry).total) if entry is not None and not usage.is_unknown() else None
            if ours is None:
                outcome = "no_usage" if usage.is_unknown() else "unpriced"
            elif theirs is not None and abs(ours - float(theirs)) <= 0.01 * max(float(theirs), 1e-12):
                outcome = "agree"
            else:
                outcome = "differ"
            rows.append(
                {"file": path.name, "model": observation.get("model"), "ours": ours,
                 "theirs": theirs, "outcome": outcome, "price_id": entry.id if entry else None}
            )
    return rows


def test_langfuse_generations_mostly_agree() -> None:
    rows = compare_generations()
    outcomes = Counter(row["outcome"] for row in rows)
    differing = [row for row in rows if row["outcome"] == "differ"]
    assert outcomes["unpriced"] == 0
    assert outcomes["agree"] == EXPECTED_AGREE, differing
    assert outcomes["differ"] == EXPECTED_DIFFER, differing
    # Langfuse books an empty usage as $0; we keep the cost unknown.
    assert outcomes["no_usage"] == EXPECTED_NO_USAGE


EXPECTED_AGREE = 25
EXPECTED_DIFFER = 3
EXPECTED_NO_USAGE = 2
