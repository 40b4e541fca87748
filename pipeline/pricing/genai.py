"""Price entries taken from the `genai-prices` package data."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time
from decimal import Decimal

from genai_prices import __version__ as GENAI_PRICES_VERSION
from genai_prices import types as gp_types
from genai_prices.data_snapshot import DataSnapshot, get_snapshot

from pipeline.pricing.entries import EPOCH, PriceEntry, PriceTier

logger = logging.getLogger(__name__)

# genai-prices price keys -> our classes. cache_write_5m_mtok, when present, is the exact price of
# the default 5-minute write and wins over the generic cache_write_mtok.
_GENAI_PRICE_KEYS = (
    ("input_mtok", "input"),
    ("cache_read_mtok", "cache_read"),
    ("cache_write_mtok", "cache_write"),
    ("cache_write_5m_mtok", "cache_write"),
    ("cache_write_1h_mtok", "cache_write_1h"),
    ("output_mtok", "output"),
    ("output_reasoning_mtok", "reasoning"),
    ("input_audio_mtok", "audio_input"),
    ("output_audio_mtok", "audio_output"),
)


# --- genai-prices entries ---------------------------------------------------------------------------


def _genai_entries(provider: gp_types.Provider, model: gp_types.ModelInfo) -> list[PriceEntry]:
    """Turn one genai-prices model's (possibly dated) prices into entries, oldest first."""
    if isinstance(model.prices, gp_types.ModelPrice):
        conditional = [gp_types.ConditionalPrice(constraint=None, prices=model.prices)]
    else:
        conditional = list(model.prices)
    entries = []
    for index, item in enumerate(conditional):
        constraint = item.constraint
        window = None
        effective_from = EPOCH
        if isinstance(constraint, gp_types.StartDateConstraint) and index > 0:
            # genai-prices uses the first price before any start date, so only later ones start.
            effective_from = datetime.combine(constraint.start_date, time(0), tzinfo=UTC)
        elif isinstance(constraint, gp_types.TimeOfDateConstraint):
            window = (_hhmm(constraint.start_time), _hhmm(constraint.end_time))
        prices, tiers, per_call = _genai_prices_of(item.prices)
        suffix = effective_from.date().isoformat()
        if window:
            suffix += f"@{window[0]}-{window[1]}"
        entries.append(
            PriceEntry(
                id=f"genai-prices:{provider.id}:{model.id}:{suffix}",
                provider=provider.id,
                model=model.id,
                match=(model.id,),
                effective_from=effective_from,
                prices=prices,
                tiers=tiers,
                per_call_usd=per_call,
                utc_time_window=window,
                source=f"genai-prices {GENAI_PRICES_VERSION}",
            )
        )
    return entries


def _hhmm(value: time) -> str:
    if value.tzinfo is not None:
        value = datetime.combine(date(1970, 1, 1), value).astimezone(UTC).time()
    return f"{value.hour:02d}:{value.minute:02d}"


def _genai_prices_of(
    model_price: gp_types.ModelPrice,
) -> tuple[dict[str, Decimal], tuple[PriceTier, ...], Decimal]:
    base: dict[str, Decimal] = {}
    tiered: dict[str, gp_types.TieredPrices] = {}
    for key, name in _GENAI_PRICE_KEYS:
        value = getattr(model_price, key, None)
        if value is None:
            continue
        if isinstance(value, gp_types.TieredPrices):
            base[name] = value.base
            tiered[name] = value
        else:
            base[name] = value
    # genai-prices tiers each price key separately; a PriceTier holds, for one threshold, the
    # price every tiered key has once the prompt is above it.
    thresholds = sorted({tier.start for value in tiered.values() for tier in value.tiers})
    tiers = []
    for threshold in thresholds:
        tier_prices = {}
        for name, value in tiered.items():
            applicable = [tier.price for tier in value.tiers if tier.start <= threshold]
            if applicable:
                tier_prices[name] = applicable[-1]
        tiers.append(PriceTier(above_prompt_tokens=threshold, prices=tier_prices))
    requests = getattr(model_price, "requests_kcount", None)
    per_call = (requests.base if isinstance(requests, gp_types.TieredPrices) else requests) or Decimal(0)
    # NOTE: web search, image, video and per-character prices are not carried over; calls that
    # use them are under-priced.
    return base, tuple(tiers), per_call / 1000



def genai_price_entries(snapshot: DataSnapshot | None = None) -> list[PriceEntry]:
    """Return every entry of the packaged genai-prices data, model by model, oldest first."""
    snapshot = snapshot or get_snapshot()
    entries: list[PriceEntry] = []
    for provider in snapshot.providers:
        for model in provider.models:
            entries.extend(_genai_entries(provider, model))
    return entries
