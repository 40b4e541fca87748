"""Columnar span pricing for the workers' hot path.

`price_columns` takes the span columns of one decoded batch and returns the cost columns. Price
resolution happens once per distinct (provider, model) in the batch (and is cached in the
PriceBook across batches); the per-span loop only bisects a timeline and multiplies floats.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import Counter

from pipeline.pricing.prices import PriceBook, Timeline, canonical_provider
from pipeline.pricing.usage import USAGE_CLASSES

logger = logging.getLogger(__name__)

SPANS_UNPRICED = Counter(
    "spanline_spans_unpriced_total",
    "LLM spans whose model has no price (cost_usd left NULL), by provider",
    ["provider"],
)

# Token columns in the order of PRICE_CLASSES, which follows the usage classes.
TOKEN_COLUMNS = USAGE_CLASSES

COST_COLUMNS = (
    "cost_usd",
    "computed_cost_usd",
    "input_cost_usd",
    "cache_read_cost_usd",
    "cache_write_cost_usd",
    "output_cost_usd",
    "reasoning_cost_usd",
    "other_cost_usd",
    "price_id",
    "pricing_status",
)

PRICED = "priced"
UNPRICED = "unpriced"
REPORTED = "reported"
NOT_APPLICABLE = "not_applicable"
NO_USAGE = "no_usage"

_default_book: PriceBook | None = None


def default_book() -> PriceBook:
    """Return a process-wide PriceBook over genai-prices only (built on first use)."""
    global _default_book
    if _default_book is None:
        _default_book = PriceBook()
    return _default_book


def price_columns(
    columns: Mapping[str, Sequence[Any]],
    book: PriceBook | None = None,
    *,
    now_ns: int | None = None,
) -> dict[str, list[Any]]:
    """Compute the cost columns of a batch of spans given as equal-length columns.

    Reads `provider`, `model`, `start_ns`, the token columns and `reported_cost_usd` (missing
    columns count as all None). Costs are float64 USD. Status per span:

    - `not_applicable`: no model (tool, browser, plan spans); cost None.
    - `unpriced`: a model without a price; cost None, never 0, and the unpriced counter grows.
    - `no_usage`: a priced model but every token count unknown; cost None.
    - `priced`: cost_usd is our computed cost.
    - `reported`: the span carries reported_cost_usd; cost_usd is that value and
      computed_cost_usd keeps ours (None when we could not compute one).

    Spans without `start_ns` are priced at `now_ns` (default: the current time).
    """
    book = book or default_book()
    models = columns.get("model")
    count = _length(columns)
    if models is None:
        models = [None] * count
    providers = columns.get("provider") or [None] * count
    starts = columns.get("start_ns") or [None] * count
    reported = columns.get("reported_cost_usd") or [None] * count
    tokens = [columns.get(name) or [None] * count for name in TOKEN_COLUMNS]
    fallback_ns = now_ns if now_ns is not None else time.time_ns()

    out: dict[str, list[Any]] = {name: [None] * count for name in COST_COLUMNS}
    cost_usd = out["cost_usd"]
    computed = out["computed_cost_usd"]
    input_cost = out["input_cost_usd"]
    cache_read_cost = out["cache_read_cost_usd"]
    cache_write_cost = out["cache_write_cost_usd"]
    output_cost = out["output_cost_usd"]
    reasoning_cost = out["reasoning_cost_usd"]
    other_cost = out["other_cost_usd"]
    price_ids = out["price_id"]
    statuses = out["pricing_status"]

    timelines: dict[tuple[Any, Any], Timeline | None] = {}
    unpriced_by_provider: dict[str, int] = {}

    for i in range(count):
        model = models[i]
        reported_cost = reported[i]
        if reported_cost is not None and not math.isfinite(reported_cost):
            # A NaN or infinite reported cost would poison every sum over cost_usd.
            reported_cost = None
        if not model:
            statuses[i] = REPORTED if reported_cost is not None else NOT_APPLICABLE
            cost_usd[i] = reported_cost
            continue

        key = (providers[i], model)
        if key in timelines:
            timeline = timelines[key]
        else:
            timeline = timelines[key] = book.timeline(providers[i], model)
        start = starts[i]
        entry = timeline.at_ns(start if start is not None else fallback_ns) if timeline else None
        if entry is None:
            label = _provider_label(book, providers[i])
            unpriced_by_provider[label] = unpriced_by_provider.get(label, 0) + 1
            statuses[i] = REPORTED if reported_cost is not None else UNPRICED
            cost_usd[i] = reported_cost
            continue

        price_ids[i] = entry.id
        t_in, t_cr, t_cw, t_cw1h, t_out, t_reason, t_ain, t_aout = (column[i] for column in tokens)
        if (
            t_in is None and t_cr is None and t_cw is None and t_cw1h is None and t_out is None
            and t_reason is None and t_ain is None and t_aout is None
        ):
            statuses[i] = REPORTED if reported_cost is not None else NO_USAGE
            cost_usd[i] = reported_cost
            continue

        t_in = t_in or 0
        t_cr = t_cr or 0
        t_cw = t_cw or 0
        t_cw1h = t_cw1h or 0
        t_ain = t_ain or 0
        prompt = t_in + t_cr + t_cw + t_cw1h + t_ain
        rates_by_tier = entry.float_rates
        rates = rates_by_tier[0][1]
        for threshold, tier_rates in rates_by_tier[1:]:
            if prompt > threshold:
                rates = tier_rates
        r_in, r_cr, r_cw, r_cw1h, r_out, r_reason, r_ain, r_aout = rates

        c_in = t_in * r_in
        c_cr = t_cr * r_cr
        c_cw = t_cw * r_cw + t_cw1h * r_cw1h
        c_out = (t_out or 0) * r_out
        c_reason = (t_reason or 0) * r_reason
        c_other = t_ain * r_ain + (t_aout or 0) * r_aout + float(entry.per_call_usd)
        total = c_in + c_cr + c_cw + c_out + c_reason + c_other

        input_cost[i] = c_in
        cache_read_cost[i] = c_cr
        cache_write_cost[i] = c_cw
        output_cost[i] = c_out
        reasoning_cost[i] = c_reason
        other_cost[i] = c_other
        computed[i] = total
        if reported_cost is not None:
            statuses[i] = REPORTED
            cost_usd[i] = reported_cost
        else:
            statuses[i] = PRICED
            cost_usd[i] = total

    for label, unpriced in unpriced_by_provider.items():
        SPANS_UNPRICED.labels(provider=label).inc(unpriced)
    return out


def _length(columns: Mapping[str, Sequence[Any]]) -> int:
    lengths = {len(values) for values in columns.values() if values is not None}
    if len(lengths) > 1:
        raise ValueError(
            "span columns have different lengths "
            + ", ".join(f"{name}={len(values)}" for name, values in columns.items() if values is not None)
        )
    return lengths.pop() if lengths else 0


def _provider_label(book: PriceBook, provider: str | None) -> str:
    """Map a provider to a bounded label value: a known provider id, 'none' or 'other'."""
    name = canonical_provider(provider)
    if name is None:
        return "none"
    return name if name in book.known_providers() else "other"
