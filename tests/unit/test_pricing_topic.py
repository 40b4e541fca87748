"""Prices-topic keys and values, and the PriceBookSource fed by them (no Kafka needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.pricing.prices import PriceBook, genai_price_entries, load_operator_prices
from pipeline.pricing.stream import PriceBookSource
from pipeline.pricing.topic import decode_record, entry_key, genai_records, operator_records

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "operator_prices.yaml"
JUNE = datetime(2026, 6, 1, 0, 0, 1, tzinfo=UTC)


def operator_source(**settings: object) -> PriceBookSource:
    source = PriceBookSource(Settings(**settings), min_rebuild_interval_s=0.0)
    for key, value in operator_records(load_operator_prices(FIXTURE)):
        source.apply(key, value)
    return source


def test_dated_entries_get_distinct_keys() -> None:
    keys = [key for key, _ in operator_records(load_operator_prices(FIXTURE))]
    assert "operator/testlab/test-dated@1970-01-01T00:00:00Z" in keys
    assert "operator/testlab/test-dated@2026-06-01T00:00:00Z" in keys
    assert "alias/azure/team-chat-prod" in keys
    assert len(keys) == len(set(keys))


def test_genai_keys_are_unique() -> None:
    keys = [key for key, _ in genai_records(genai_price_entries())]
    assert len(keys) == len(set(keys))
    assert all(key.startswith("genai-prices/") for key in keys)


def test_windowed_entry_key_names_window() -> None:
    windowed = [entry for entry in genai_price_entries() if entry.utc_time_window]
    assert windowed, "genai-prices 0.2.3 has DeepSeek's daily windows"
    assert entry_key(windowed[0]).endswith(f"[{windowed[0].utc_time_window[0]}-{windowed[0].utc_time_window[1]}]")


def test_record_round_trips_entry() -> None:
    entry = load_operator_prices(FIXTURE).entries[0]
    record = decode_record(entry_key(entry).encode(), operator_records(load_operator_prices(FIXTURE))[0][1])
    assert record.entry == entry


def test_unknown_key_prefix_rejected() -> None:
    with pytest.raises(ValueError, match="no known prefix"):
        decode_record(b"acme/model", b"{}")


def test_source_uses_topic_operator_entries() -> None:
    book = operator_source().book()
    assert book.resolve("testlab", "test-dated", JUNE).id == "operator:testlab:test-dated:2026-06-01T00:00:00Z"
    assert book.resolve("azure", "team-chat-prod", JUNE).model == "test-openai-shaped"


def test_source_tombstone_removes_entry() -> None:
    source = operator_source()
    source.apply(b"operator/testlab/test-dated@2026-06-01T00:00:00Z", None)
    assert source.book().resolve("testlab", "test-dated", JUNE).id == "operator:testlab:test-dated:1970-01-01T00:00:00Z"


def test_source_rebuilds_only_after_change() -> None:
    source = operator_source()
    first = source.book()
    assert source.book() is first
    source.apply(b"operator/testlab/test-dated@2026-06-01T00:00:00Z", None)
    assert source.book() is not first


def test_source_skips_invalid_record() -> None:
    source = operator_source()
    source.apply(b"operator/testlab/broken@1970-01-01T00:00:00Z", b"not json")
    assert source.records_invalid == 1
    assert source.book().resolve("testlab", "test-dated", JUNE) is not None


def test_empty_source_falls_back_to_prices_file() -> None:
    source = PriceBookSource(Settings(prices_file=FIXTURE), min_rebuild_interval_s=0.0)
    assert source.book().resolve("testlab", "test-dated", JUNE).id.startswith("operator:testlab:test-dated")
    assert source.book().resolve("openai", "gpt-4o-mini", JUNE).source.startswith("genai-prices")


def test_topic_genai_entries_match_packaged_book() -> None:
    source = PriceBookSource(Settings(), min_rebuild_interval_s=0.0)
    for key, value in genai_records(genai_price_entries()):
        source.apply(key, value)
    topic_book = source.book()
    packaged = PriceBook()
    for provider, model in [
        ("openai", "gpt-4o-2024-08-06"),
        ("aws.bedrock", "us.anthropic.claude-3-5-sonnet-20240620-v1:0"),
        ("gcp.vertex_ai", "gemini-1.5-pro"),
        ("deepseek", "deepseek-chat"),
    ]:
        assert topic_book.resolve(provider, model, JUNE) == packaged.resolve(provider, model, JUNE), model


def test_deleted_genai_model_is_unpriced() -> None:
    source = PriceBookSource(Settings(), min_rebuild_interval_s=0.0)
    records = genai_records(genai_price_entries())
    for key, value in records:
        source.apply(key, value)
    for key, _ in records:
        if key.startswith("genai-prices/openai/gpt-4o-mini@"):
            source.apply(key, None)
    assert source.book().resolve("openai", "gpt-4o-mini", JUNE) is None
