"""Cost of normalised usage under operator prices from tests/fixtures/operator_prices.yaml."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.pricing.columns import SPANS_UNPRICED, price_columns
from pipeline.pricing.prices import PriceBook, PriceEntry, cost, load_operator_prices, to_ns
from pipeline.pricing.usage import Usage, normalise_usage

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "operator_prices.yaml"
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook(load_operator_prices(FIXTURE))


def entry_for(book: PriceBook, model: str, at: datetime = AT) -> PriceEntry:
    entry = book.resolve("testlab", model, at)
    assert entry is not None, model
    return entry


def columns_for(usage: Usage, model: str, at: datetime = AT, provider: str = "testlab") -> dict:
    names = (
        "input_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens",
        "output_tokens", "reasoning_tokens", "audio_input_tokens", "audio_output_tokens",
    )
    columns = {name: [getattr(usage, name)] for name in names}
    columns.update(provider=[provider], model=[model], start_ns=[to_ns(at)], reported_cost_usd=[None])
    return columns


def test_openai_shaped_cached_prompt(book: PriceBook) -> None:
    usage = normalise_usage(
        "openai.chat",
        {"prompt_tokens": 10_000, "prompt_tokens_details": {"cached_tokens": 8_000}, "completion_tokens": 500},
    )
    breakdown = cost(usage, entry_for(book, "test-openai-shaped"))
    assert breakdown.total == Decimal("0.012")
    assert breakdown.cache_read == Decimal("0.004")
    out = price_columns(columns_for(usage, "test-openai-shaped"), book)
    assert out["cost_usd"][0] == pytest.approx(0.012, rel=1e-12)
    assert out["pricing_status"][0] == "priced"


def test_anthropic_native_cache_classes(book: PriceBook) -> None:
    usage = normalise_usage(
        "anthropic",
        {
            "input_tokens": 1_000,
            "cache_read_input_tokens": 6_000,
            "cache_creation_input_tokens": 2_000,
            "cache_creation": {"ephemeral_5m_input_tokens": 2_000, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 300,
        },
    )
    assert cost(usage, entry_for(book, "test-anthropic-shaped")).total == Decimal("0.0168")


def test_anthropic_call_via_otel_same_cost(book: PriceBook) -> None:
    usage = normalise_usage(
        "otel.gen_ai",
        {
            "gen_ai.usage.input_tokens": 9_000,
            "gen_ai.usage.cache_read.input_tokens": 6_000,
            "gen_ai.usage.cache_creation.input_tokens": 2_000,
            "gen_ai.usage.output_tokens": 300,
        },
    )
    assert usage.input_tokens == 1_000
    assert cost(usage, entry_for(book, "test-anthropic-shaped")).total == Decimal("0.0168")
    out = price_columns(columns_for(usage, "test-anthropic-shaped"), book)
    assert out["cost_usd"][0] == pytest.approx(0.0168, rel=1e-12)


def test_gemini_thoughts_billed_as_output(book: PriceBook) -> None:
    usage = normalise_usage(
        "gemini", {"promptTokenCount": 400, "candidatesTokenCount": 1_000, "thoughtsTokenCount": 600}
    )
    breakdown = cost(usage, entry_for(book, "test-gemini-shaped"))
    assert breakdown.total == Decimal("0.0165")
    assert breakdown.reasoning == Decimal("0.006")


def test_openai_reasoning_not_billed_twice(book: PriceBook) -> None:
    usage = normalise_usage(
        "openai.chat",
        {
            "prompt_tokens": 2_000,
            "completion_tokens": 1_500,
            "completion_tokens_details": {"reasoning_tokens": 1_000},
        },
    )
    assert usage.output_tokens == 500
    assert cost(usage, entry_for(book, "test-reasoner")).total == Decimal("0.0175")
    out = price_columns(columns_for(usage, "test-reasoner"), book)
    assert out["cost_usd"][0] == pytest.approx(0.0175, rel=1e-12)


def test_unknown_model_unpriced_and_counted(book: PriceBook) -> None:
    before = SPANS_UNPRICED.labels(provider="other")._value.get()
    usage = Usage(input_tokens=100, output_tokens=10)
    out = price_columns(columns_for(usage, "acme-llm-9", provider="acme"), book)
    assert out["cost_usd"][0] is None
    assert out["computed_cost_usd"][0] is None
    assert out["pricing_status"][0] == "unpriced"
    assert SPANS_UNPRICED.labels(provider="other")._value.get() == before + 1


def test_dated_price_switches_at_boundary(book: PriceBook) -> None:
    usage = Usage(input_tokens=1_000_000)
    before = datetime(2026, 5, 31, 23, 59, 59, tzinfo=UTC)
    after = datetime(2026, 6, 1, 0, 0, 1, tzinfo=UTC)
    assert cost(usage, entry_for(book, "test-dated", before)).total == Decimal("1")
    assert cost(usage, entry_for(book, "test-dated", after)).total == Decimal("0.5")
    both = columns_for(usage, "test-dated", before)
    both = {name: values * 2 for name, values in both.items()}
    both["start_ns"] = [to_ns(before), to_ns(after)]
    out = price_columns(both, book)
    assert out["cost_usd"] == [pytest.approx(1.0), pytest.approx(0.5)]
    assert out["price_id"][0] != out["price_id"][1]


def test_string_token_count_read_as_number(book: PriceBook) -> None:
    usage = normalise_usage("anthropic", {"input_tokens": "22118", "output_tokens": 0})
    assert usage.input_tokens == 22_118
    assert cost(usage, entry_for(book, "test-openai-shaped")).total == Decimal("0.044236")


def test_tier_applies_to_whole_request(book: PriceBook) -> None:
    entry = entry_for(book, "test-tiered")
    small = Usage(input_tokens=150_000, cache_read_tokens=50_000, output_tokens=1_000)
    large = Usage(input_tokens=150_000, cache_read_tokens=50_001, output_tokens=1_000)
    # 200,000 prompt tokens stay in the base tier; one more moves every token to the tier price.
    assert cost(small, entry).total == Decimal("0.2") + Decimal("0.002") + Decimal("0.01")
    assert cost(large, entry).rates["input"] == Decimal("2")
    assert cost(large, entry).other == Decimal("0.01")


def test_reported_cost_wins_computed_kept(book: PriceBook) -> None:
    usage = Usage(input_tokens=1_000_000)
    columns = columns_for(usage, "test-dated", datetime(2026, 1, 1, tzinfo=UTC))
    columns["reported_cost_usd"] = [0.9]
    out = price_columns(columns, book)
    assert out["pricing_status"][0] == "reported"
    assert out["cost_usd"][0] == 0.9
    assert out["computed_cost_usd"][0] == pytest.approx(1.0)


@pytest.mark.parametrize("reported", [float("nan"), float("inf")])
def test_non_finite_reported_cost_ignored(book: PriceBook, reported: float) -> None:
    columns = columns_for(Usage(input_tokens=1_000_000), "test-dated", datetime(2026, 1, 1, tzinfo=UTC))
    columns["reported_cost_usd"] = [reported]
    out = price_columns(columns, book)
    assert out["pricing_status"][0] == "priced"
    assert out["cost_usd"][0] == pytest.approx(1.0)


def test_span_without_model_not_applicable(book: PriceBook) -> None:
    out = price_columns({"model": [None, ""], "provider": [None, None], "start_ns": [1, 2]}, book)
    assert out["pricing_status"] == ["not_applicable", "not_applicable"]
    assert out["cost_usd"] == [None, None]


def test_priced_model_without_usage(book: PriceBook) -> None:
    out = price_columns(columns_for(Usage(), "test-reasoner"), book)
    assert out["pricing_status"][0] == "no_usage"
    assert out["cost_usd"][0] is None


def test_deployment_alias_resolves(book: PriceBook) -> None:
    entry = book.resolve("azure", "team-chat-prod", AT)
    assert entry is not None
    assert entry.model == "test-openai-shaped"


def test_operator_entry_beats_genai_prices(book: PriceBook) -> None:
    entry = book.resolve("openai", "gpt-4o-2024-08-06", AT)
    assert entry is not None
    assert entry.id.startswith("operator:openai:gpt-4o:")
    assert entry.prices["input"] == Decimal("1.00")


def test_columns_of_unequal_length_rejected(book: PriceBook) -> None:
    with pytest.raises(ValueError, match="different lengths"):
        price_columns({"model": ["a"], "provider": ["b", "c"]}, book)


def test_price_entry_round_trips_through_dict(book: PriceBook) -> None:
    entry = entry_for(book, "test-tiered")
    assert PriceEntry.from_dict(entry.to_dict()) == entry
