"""Operator prices from a YAML file: negotiated rates, private models, fees and aliases."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from pipeline.pricing.entries import EPOCH, PRICE_CLASSES, PriceEntry, PriceTier, canonical_provider, parse_time

logger = logging.getLogger(__name__)

# --- operator prices --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelAlias:
    """A deployment name (Azure deployment, gateway route) that is an alias of a known model."""

    deployment: str
    model: str
    provider: str | None = None
    to_provider: str | None = None


@dataclass(frozen=True)
class OperatorPrices:
    """Prices and aliases the operator configured; they take precedence over genai-prices."""

    entries: tuple[PriceEntry, ...] = ()
    aliases: tuple[ModelAlias, ...] = ()


_ENTRY_KEYS = {"provider", "model", "models", "effective_from", "per_call", "tiers", "utc_time_window"}
_ALIAS_KEYS = {"provider", "deployment", "model", "to_provider"}


def _price_value(value: Any, where: str) -> Decimal:
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{where}: {value!r} is not a price; write USD per million tokens, e.g. 2.50") from None
    if not price.is_finite() or price < 0:
        raise ValueError(f"{where}: {value!r} is not a non-negative price")
    return price


def _class_prices(raw: Mapping[str, Any], where: str, allowed_extra: set[str]) -> dict[str, Decimal]:
    unknown = set(raw) - set(PRICE_CLASSES) - allowed_extra
    if unknown:
        raise ValueError(
            f"{where}: unknown keys {sorted(unknown)}; price keys are {', '.join(PRICE_CLASSES)}"
        )
    return {
        name: _price_value(raw[name], f"{where}.{name}")
        for name in PRICE_CLASSES
        if raw.get(name) is not None
    }


def load_operator_prices(path: str | Path) -> OperatorPrices:
    """Read operator prices and deployment aliases from a YAML file.

    Shape (prices in USD per million tokens, `per_call` in USD per request):

        aliases:
          - {provider: azure, deployment: prod-chat, model: gpt-4o-2024-08-06, to_provider: openai}
        prices:
          - provider: acme
            model: acme-llm-9          # or models: [name, other-name]
            effective_from: 2026-06-01T00:00:00Z   # optional; omitted = always
            input: 1.00
            cache_read: 0.10
            output: 4.00
            per_call: 0.002
            tiers: [{above_prompt_tokens: 200000, input: 2.00, output: 8.00}]

    Raises ValueError naming the entry and key when the file is invalid.
    """
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"operator price file {path} is not valid YAML: {error}") from None
    if not isinstance(document, Mapping):
        raise ValueError(f"operator price file {path} must contain a mapping with 'prices' and 'aliases'")
    unknown = set(document) - {"prices", "aliases"}
    if unknown:
        raise ValueError(f"operator price file {path}: unknown top-level keys {sorted(unknown)}")

    entries = [
        _operator_entry(raw, f"{path}: prices[{index}]", path)
        for index, raw in enumerate(document.get("prices") or [])
    ]
    aliases = []
    for index, raw in enumerate(document.get("aliases") or []):
        where = f"{path}: aliases[{index}]"
        if not isinstance(raw, Mapping) or not raw.get("deployment") or not raw.get("model"):
            raise ValueError(f"{where} needs 'deployment' and 'model'")
        if set(raw) - _ALIAS_KEYS:
            raise ValueError(f"{where}: unknown keys {sorted(set(raw) - _ALIAS_KEYS)}")
        aliases.append(
            ModelAlias(
                deployment=str(raw["deployment"]).strip().lower(),
                model=str(raw["model"]).strip(),
                provider=canonical_provider(raw.get("provider")),
                to_provider=canonical_provider(raw.get("to_provider")),
            )
        )
    logger.info("operator prices loaded path=%s entries=%d aliases=%d", path, len(entries), len(aliases))
    return OperatorPrices(entries=tuple(entries), aliases=tuple(aliases))


def _operator_entry(raw: Any, where: str, path: Path) -> PriceEntry:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be a mapping")
    names = raw.get("models") or ([raw["model"]] if raw.get("model") else [])
    if not names:
        raise ValueError(f"{where} needs 'model' or 'models'")
    provider = canonical_provider(raw.get("provider")) or "*"
    prices = _class_prices(raw, where, _ENTRY_KEYS)
    tiers = []
    for tier_index, tier in enumerate(raw.get("tiers") or []):
        tier_where = f"{where}.tiers[{tier_index}]"
        if not isinstance(tier, Mapping) or "above_prompt_tokens" not in tier:
            raise ValueError(f"{tier_where} needs 'above_prompt_tokens'")
        tiers.append(
            PriceTier(
                above_prompt_tokens=int(tier["above_prompt_tokens"]),
                prices=_class_prices(tier, tier_where, {"above_prompt_tokens"}),
            )
        )
    tiers.sort(key=lambda tier: tier.above_prompt_tokens)
    effective = raw.get("effective_from")
    effective_from = parse_time(effective, f"{where}.effective_from") if effective else EPOCH
    window = raw.get("utc_time_window")
    model = str(names[0]).strip()
    return PriceEntry(
        id=f"operator:{provider}:{model}:{effective_from.isoformat().replace('+00:00', 'Z')}",
        provider=provider,
        model=model,
        match=tuple(str(name).strip().lower() for name in names),
        effective_from=effective_from,
        prices=prices,
        tiers=tuple(tiers),
        per_call_usd=_price_value(raw.get("per_call", 0), f"{where}.per_call"),
        utc_time_window=(str(window[0]), str(window[1])) if window else None,
        source=f"operator:{path.name}",
    )
