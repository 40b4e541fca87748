"""Prices: the public names of the pricing modules in one place.

Prices come from the `genai-prices` package data (genai.py), with operator entries from a YAML
file taking precedence (operator.py: negotiated rates, private models, per-call fees, deployment
aliases). entries.py defines a price entry and the cost of a usage under it, and book.py resolves
(provider, model, time) to one entry. All prices are USD per million tokens except
`per_call_usd`, which is USD per request.
"""

from pipeline.pricing.book import (
    PriceBook,
    Timeline,
    default_price_book,
    model_candidates,
    to_ns,
)
from pipeline.pricing.entries import (
    PRICE_CLASSES,
    CostBreakdown,
    PriceEntry,
    PriceTier,
    canonical_provider,
    cost,
    parse_time,
    prompt_size,
)
from pipeline.pricing.genai import genai_price_entries
from pipeline.pricing.operator import ModelAlias, OperatorPrices, load_operator_prices

__all__ = [
    "CostBreakdown",
    "ModelAlias",
    "OperatorPrices",
    "PRICE_CLASSES",
    "PriceBook",
    "PriceEntry",
    "PriceTier",
    "Timeline",
    "canonical_provider",
    "cost",
    "default_price_book",
    "genai_price_entries",
    "load_operator_prices",
    "model_candidates",
    "parse_time",
    "prompt_size",
    "to_ns",
]
