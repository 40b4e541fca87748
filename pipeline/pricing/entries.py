"""Price entries and span cost: what one price says and what a usage costs under it.

All prices are USD per million tokens except `per_call_usd`, which is USD per request.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import cached_property
from typing import Any


from pipeline.pricing.usage import Usage

logger = logging.getLogger(__name__)

# Price classes, each billed on the Usage field `<class>_tokens`.
PRICE_CLASSES = (
    "input",
    "cache_read",
    "cache_write",
    "cache_write_1h",
    "output",
    "reasoning",
    "audio_input",
    "audio_output",
)

# A class without its own price is billed at its parent's price, as genai-prices does: cached,
# cache-write and audio tokens are kinds of input, reasoning and audio output are kinds of output.
PRICE_FALLBACK = {
    "cache_read": "input",
    "cache_write": "input",
    "cache_write_1h": "cache_write",
    "reasoning": "output",
    "audio_input": "input",
    "audio_output": "output",
}

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLION = Decimal(1_000_000)

# Provider names as OTel GenAI, OpenInference and SDKs send them -> genai-prices provider ids.
PROVIDER_ALIASES = {
    "aws.bedrock": "aws",
    "bedrock": "aws",
    "amazon_bedrock": "aws",
    "amazon-bedrock": "aws",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "gemini": "google",
    "google_genai": "google",
    "google-vertex": "google",
    "azure.ai.openai": "azure",
    "az.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.inference": "azure",
    "azure_openai": "azure",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "moonshot_ai": "moonshotai",
}

# Cross-region inference profile prefixes of Bedrock model ids (us.anthropic.claude-...).
_BEDROCK_REGION_PREFIX = re.compile(r"^(us|eu|apac|ap|global|us-gov|jp|au|ca)\.(?=[a-z0-9-]+\.)")
# Bedrock foundation-model ids: vendor prefix and version suffix around the vendor's model name.
_BEDROCK_MODEL_ID = re.compile(
    r"^(anthropic|meta|amazon|mistral|cohere|ai21|deepseek|openai|qwen)\.(.+?)(-v\d+(:\d+)?)?$"
)


def canonical_provider(provider: str | None) -> str | None:
    """Return the genai-prices id for a provider name as sources report it (lower-cased)."""
    if provider is None:
        return None
    name = provider.strip().lower()
    if not name:
        return None
    return PROVIDER_ALIASES.get(name, name)


@dataclass(frozen=True)
class PriceTier:
    """Prices that replace the base prices when the prompt is larger than `above_prompt_tokens`.

    The tier applies to the whole request (a cliff, not a marginal rate). Classes absent from
    `prices` keep the base price.
    """

    above_prompt_tokens: int
    prices: Mapping[str, Decimal]


@dataclass(frozen=True)
class PriceEntry:
    """One price list for one model, in force from `effective_from` (UTC) until a later entry.

    `prices` contains USD per million tokens for the classes the source sets; other classes fall back
    as PRICE_FALLBACK says. `utc_time_window` ("HH:MM", "HH:MM") limits the entry to a daily window,
    for providers with peak and off-peak prices.
    """

    id: str
    provider: str
    model: str
    match: tuple[str, ...]
    effective_from: datetime
    prices: Mapping[str, Decimal]
    source: str
    tiers: tuple[PriceTier, ...] = ()
    per_call_usd: Decimal = Decimal(0)
    utc_time_window: tuple[str, str] | None = None

    def rates(self, prompt_tokens: int = 0) -> dict[str, Decimal]:
        """Return the USD-per-million price of every class for a prompt of this size."""
        chosen = dict(self.prices)
        for tier in self.tiers:
            if prompt_tokens > tier.above_prompt_tokens:
                chosen.update(tier.prices)
        for name in PRICE_CLASSES:
            if chosen.get(name) is None:
                parent = PRICE_FALLBACK.get(name)
                # Parents come before children in PRICE_CLASSES, so the chain is already resolved.
                chosen[name] = chosen.get(parent, Decimal(0)) if parent else Decimal(0)
        return {name: chosen[name] for name in PRICE_CLASSES}

    @cached_property
    def float_rates(self) -> tuple[tuple[int, tuple[float, ...]], ...]:
        """Per-token USD rates as floats for each tier threshold, lowest first, for the hot path."""
        thresholds = [-1] + [tier.above_prompt_tokens for tier in self.tiers]
        result = []
        for threshold in thresholds:
            rates = self.rates(threshold + 1)
            result.append((threshold, tuple(float(rates[name] / _MILLION) for name in PRICE_CLASSES)))
        return tuple(result)

    def in_window(self, seconds_of_day: int) -> bool:
        """Return whether a UTC second of the day falls in this entry's daily window."""
        if self.utc_time_window is None:
            return True
        start, end = (_seconds_of_day(text) for text in self.utc_time_window)
        if end < start:
            return seconds_of_day >= start or seconds_of_day < end
        return start <= seconds_of_day < end

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (decimals as strings, time as ISO-8601 UTC)."""
        return {
            "id": self.id,
            "provider": self.provider,
            "model": self.model,
            "match": list(self.match),
            "effective_from": self.effective_from.isoformat().replace("+00:00", "Z"),
            "prices": {name: str(value) for name, value in self.prices.items()},
            "tiers": [
                {
                    "above_prompt_tokens": tier.above_prompt_tokens,
                    "prices": {name: str(value) for name, value in tier.prices.items()},
                }
                for tier in self.tiers
            ],
            "per_call_usd": str(self.per_call_usd),
            "utc_time_window": list(self.utc_time_window) if self.utc_time_window else None,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriceEntry:
        """Build an entry from `to_dict` output."""
        window = data.get("utc_time_window")
        return cls(
            id=data["id"],
            provider=data["provider"],
            model=data["model"],
            match=tuple(data.get("match", ())),
            effective_from=parse_time(data["effective_from"], "effective_from"),
            prices={name: Decimal(value) for name, value in data["prices"].items()},
            tiers=tuple(
                PriceTier(
                    above_prompt_tokens=int(tier["above_prompt_tokens"]),
                    prices={name: Decimal(value) for name, value in tier["prices"].items()},
                )
                for tier in data.get("tiers", ())
            ),
            per_call_usd=Decimal(data.get("per_call_usd", "0")),
            utc_time_window=tuple(window) if window else None,  # type: ignore[arg-type]
            source=data["source"],
        )


def _seconds_of_day(text: str) -> int:
    hours, minutes = text.split(":")[:2]
    return int(hours) * 3600 + int(minutes) * 60


def parse_time(value: Any, label: str) -> datetime:
    """Parse an ISO-8601 time or a date (midnight UTC); naive times are UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time(0), tzinfo=UTC)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"{label} {value!r} is not an ISO-8601 time; write e.g. 2026-06-01T00:00:00Z"
            ) from None
    else:
        raise ValueError(f"{label} {value!r} is not an ISO-8601 time; write e.g. 2026-06-01T00:00:00Z")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# --- cost -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostBreakdown:
    """Cost of one call in USD (exact decimals), per class and in total.

    `cache_write` covers both lifetimes; `other` covers audio tokens and the per-call fee.
    `total` is the sum of the classes.
    """

    input: Decimal
    cache_read: Decimal
    cache_write: Decimal
    output: Decimal
    reasoning: Decimal
    other: Decimal
    total: Decimal
    price_id: str
    prompt_tokens: int
    rates: Mapping[str, Decimal]


def prompt_size(usage: Usage) -> int:
    """Return the prompt size that selects a tier: input plus cache reads, writes and audio input."""
    return sum(
        value or 0
        for value in (
            usage.input_tokens,
            usage.cache_read_tokens,
            usage.cache_write_tokens,
            usage.cache_write_1h_tokens,
            usage.audio_input_tokens,
        )
    )


def cost(usage: Usage, entry: PriceEntry) -> CostBreakdown:
    """Price one call's usage with one entry; unknown (None) classes count as zero tokens.

    Each token is billed exactly once because the usage classes are disjoint: cache reads are not
    inside input, reasoning is not inside output.
    """
    prompt = prompt_size(usage)
    rates = entry.rates(prompt)

    def part(name: str) -> Decimal:
        count = getattr(usage, f"{name}_tokens") or 0
        return rates[name] * count / _MILLION

    input_cost = part("input")
    cache_read_cost = part("cache_read")
    cache_write_cost = part("cache_write") + part("cache_write_1h")
    output_cost = part("output")
    reasoning_cost = part("reasoning")
    other_cost = part("audio_input") + part("audio_output") + entry.per_call_usd
    total = input_cost + cache_read_cost + cache_write_cost + output_cost + reasoning_cost + other_cost
    return CostBreakdown(
        input=input_cost,
        cache_read=cache_read_cost,
        cache_write=cache_write_cost,
        output=output_cost,
        reasoning=reasoning_cost,
        other=other_cost,
        total=total,
        price_id=entry.id,
        prompt_tokens=prompt,
        rates=rates,
    )
