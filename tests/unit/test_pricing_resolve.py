"""Model names as they really arrive resolve to genai-prices entries."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from pipeline.pricing.prices import PriceBook, model_candidates

AT = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook()


@pytest.mark.parametrize(
    ("provider", "model", "expected_model"),
    [
        ("openai", "gpt-4o-2024-08-06", "gpt-4o"),
        (None, "openai/gpt-4o", "gpt-4o"),
        ("gcp.gemini", "models/gemini-1.5-pro", "gemini-1.5-pro"),
        ("gcp.vertex_ai", "projects/p1/locations/us-central1/publishers/google/models/gemini-1.5-pro", "gemini-1.5-pro"),
        ("aws.bedrock", "us.anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic.claude-3-5-sonnet-20240620-v1:0"),
        ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("my-gateway", "gpt-4o-mini", "gpt-4o-mini"),
    ],
)
def test_real_model_names_resolve(book: PriceBook, provider: str | None, model: str, expected_model: str) -> None:
    entry = book.resolve(provider, model, AT)
    assert entry is not None
    assert entry.model.endswith(expected_model)
    assert entry.id.startswith("genai-prices:")


def test_bedrock_arn_reduced_to_model_id() -> None:
    candidates = model_candidates(
        "aws", "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"
    )
    names = [name for _, name in candidates]
    assert "anthropic.claude-3-haiku-20240307-v1:0" in names


def test_gemini_tier_from_genai_prices(book: PriceBook) -> None:
    entry = book.resolve("google", "gemini-1.5-pro", AT)
    assert entry is not None
    assert entry.rates(100_000)["input"] == Decimal("1.25")
    assert entry.rates(200_000)["input"] == Decimal("2.5")


def test_unknown_model_resolves_to_none(book: PriceBook) -> None:
    assert book.resolve("acme", "acme-llm-9", AT) is None
    assert book.resolve(None, None, AT) is None


def test_peak_window_entry_chosen_by_time_of_day(book: PriceBook) -> None:
    peak = book.resolve("deepseek", "deepseek-chat", datetime(2026, 1, 15, 12, 0, tzinfo=UTC))
    off_peak = book.resolve("deepseek", "deepseek-chat", datetime(2026, 1, 15, 20, 0, tzinfo=UTC))
    assert peak is not None and off_peak is not None
    assert peak.id != off_peak.id
