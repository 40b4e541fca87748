"""Our usage rules and prices against genai-prices' own dataset of recorded usage blocks.

Each block in pricing/usages.json carries, per (provider, API flavour), the price genai-prices
expects. We normalise the raw block with our rule for that flavour, price it with our PriceBook and
compare the totals within 0.1 %. Known differences are explained in docs/pricing.md; the test
asserts their count so a regression or a fix shows up.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.pricing.prices import PriceBook, cost
from pipeline.pricing.usage import normalise_usage

SHARED_DATA = Path(
    os.environ.get("SPANLINE_SHARED_DATA")
    or Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
)
USAGES = SHARED_DATA / "pricing" / "usages.json"

# (genai-prices provider id, API flavour) -> our usage source.
SOURCES = {
    ("anthropic", "default"): "anthropic",
    ("aws", "anthropic"): "anthropic",
    ("google", "anthropic"): "anthropic",
    ("azure", "anthropic"): "anthropic",
    ("openai", "chat"): "openai.chat",
    ("azure", "chat"): "openai.chat",
    ("groq", "default"): "openai.chat",
    ("deepseek", "chat"): "openai.chat",
    ("openrouter", "chat"): "openai.chat",
    ("openai", "responses"): "openai.responses",
    ("azure", "responses"): "openai.responses",
    ("google", "default"): "gemini",
    ("mistral", "default"): "mistral",
    ("aws", "default"): "bedrock",
}

# A fixed request time keeps the comparison stable; noon UTC is inside DeepSeek's peak window.
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# Comparisons that differ, by reason; docs/pricing.md explains each group.
KNOWN_MISMATCHES = {
    "mistral_cached_tokens": 21,
    "gemini_image_output": 5,
    "gemini_cached_audio": 2,
    "openai_cache_write": 3,
    "price_data_differs": 3,
}


def compare_all() -> tuple[int, Counter[str], list[tuple]]:
    book = PriceBook()
    data = json.loads(USAGES.read_text(encoding="utf-8"))
    agreed = 0
    mismatches: Counter[str] = Counter()
    details = []
    for item in data:
        body = item["body"]
        model = item.get("model") or body.get("model") or body.get("modelVersion")
        raw = body.get("usage") or body.get("usageMetadata")
        for extracted in item["extracted"]:
            for extractor in extracted["extractors"]:
                key = (extractor["provider_id"], extractor["api_flavor"])
                if key not in SOURCES or "input_price" not in extractor:
                    continue
                expected = Decimal(extractor["input_price"]) + Decimal(extractor.get("output_price", "0"))
                usage = normalise_usage(SOURCES[key], raw)
                entry = book.resolve(extractor["provider_id"], model, AT)
                ours = cost(usage, entry).total if entry is not None else None
                if ours is not None and abs(ours - expected) <= expected * Decimal("0.001") + Decimal("1e-12"):
                    agreed += 1
                    continue
                reason = classify(key, raw, extracted["usage"], usage)
                mismatches[reason] += 1
                details.append((reason, key, model, ours, expected))
    return agreed, mismatches, details


def classify(key: tuple[str, str], raw: dict, library_usage: dict, usage) -> str:
    """Name why our price differs from the dataset's for one block."""
    if key[0] == "mistral" and usage.cache_read_tokens and "cache_read_tokens" not in library_usage:
        return "mistral_cached_tokens"
    if key == ("google", "default"):
        if library_usage.get("output_image_tokens"):
            return "gemini_image_output"
        if library_usage.get("cache_audio_read_tokens"):
            return "gemini_cached_audio"
    if usage.cache_write_tokens and "cache_write_tokens" not in library_usage and key[1] in ("chat", "responses"):
        return "openai_cache_write"
    return "price_data_differs"


pytestmark = pytest.mark.skipif(not USAGES.exists(), reason=f"real data not found at {USAGES}")


def test_usages_dataset_prices_agree() -> None:
    agreed, mismatches, details = compare_all()
    assert agreed > 2_500
    for reason, expected_count in KNOWN_MISMATCHES.items():
        found = [detail for detail in details if detail[0] == reason]
        assert mismatches[reason] == expected_count, (reason, found[:5])
