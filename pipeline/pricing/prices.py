"""Price entries, the price book that resolves (provider, model, time) to one, and span cost.

Prices come from the `genai-prices` package data, with operator entries from a YAML file taking
precedence (negotiated rates, private models, per-call fees, deployment aliases). All prices are
USD per million tokens except `per_call_usd`, which is USD per request.
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from genai_prices import __version__ as GENAI_PRICES_VERSION
from genai_prices import types as gp_types
from genai_prices.data_snapshot import DataSnapshot, find_provider_by_id, get_snapshot

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


# --- the price book ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timeline:
    """All entries of one (provider, model), sorted by effective_from, for bisecting by time."""

    starts_ns: tuple[int, ...]
    entries: tuple[tuple[PriceEntry, ...], ...]

    def at_ns(self, start_ns: int) -> PriceEntry | None:
        """Return the entry in force at a UTC time in epoch nanoseconds, or None before the first."""
        index = bisect.bisect_right(self.starts_ns, start_ns) - 1
        if index < 0:
            return None
        candidates = self.entries[index]
        if len(candidates) == 1:
            return candidates[0]
        seconds_of_day = (start_ns // 1_000_000_000) % 86_400
        for entry in candidates:
            if entry.in_window(seconds_of_day):
                return entry
        return candidates[-1]


def _timeline(entries: Sequence[PriceEntry]) -> Timeline:
    """Group entries by start; windowed entries are tried before the unwindowed fallback."""
    by_start: dict[int, list[PriceEntry]] = {}
    for entry in entries:
        by_start.setdefault(_to_ns(entry.effective_from), []).append(entry)
    starts = sorted(by_start)
    groups = []
    for start in starts:
        # Later entries with the same start win, like genai-prices' "last active price".
        ordered = list(reversed(by_start[start]))
        ordered.sort(key=lambda entry: entry.utc_time_window is None)
        groups.append(tuple(ordered))
    return Timeline(starts_ns=tuple(starts), entries=tuple(groups))


def _to_ns(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def to_ns(moment: datetime) -> int:
    """Return a datetime as UTC epoch nanoseconds (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _to_ns(moment.astimezone(UTC))


def model_candidates(provider: str | None, model: str) -> list[tuple[str | None, str]]:
    """List (provider, model) spellings to try for a model string as it arrived, best first.

    Handles provider prefixes (openai/gpt-4o), resource paths (projects/.../models/gemini-1.5-pro,
    models/gemini-1.5-pro, Bedrock ARNs), cross-region Bedrock profiles (us.anthropic...),
    Bedrock foundation-model ids under a non-Bedrock provider and Vertex `@` versions.
    """
    name = model.strip().lower()
    result: list[tuple[str | None, str]] = [(provider, name)]

    def add(candidate_provider: str | None, candidate: str) -> None:
        if candidate and (candidate_provider, candidate) not in result:
            result.append((candidate_provider, candidate))

    if name.startswith("arn:") and "/" in name:
        name = name.rsplit("/", 1)[1]
        add(provider, name)
    if "models/" in name:
        name = name.rsplit("models/", 1)[1]
        add(provider, name)
    if "/" in name:
        prefix, rest = name.split("/", 1)
        prefix_provider = canonical_provider(prefix)
        add(provider or prefix_provider, rest)
        if provider is None or provider in {"openrouter", "litellm"}:
            add(prefix_provider, rest)
        name = rest
        if "/" in name:
            name = name.rsplit("/", 1)[1]
            add(provider, name)
    stripped = _BEDROCK_REGION_PREFIX.sub("", name)
    if stripped != name:
        add(provider, stripped)
        name = stripped
    bedrock = _BEDROCK_MODEL_ID.match(name)
    if bedrock and provider != "aws":
        add(provider, bedrock.group(2))
    if "@" in name:
        add(provider, name.replace("@", "-"))
        add(provider, name.split("@", 1)[0])
    return result


class PriceBook:
    """Resolve (provider, model, time) to the PriceEntry in force, operator entries first.

    Resolutions are cached per (provider, model) as a timeline of dated entries, so pricing a span
    costs one dict lookup and one bisect.
    """

    def __init__(
        self,
        operator: OperatorPrices | None = None,
        *,
        use_genai_prices: bool = True,
        snapshot: DataSnapshot | None = None,
        genai_entries: Iterable[PriceEntry] | None = None,
    ) -> None:
        self.operator = operator or OperatorPrices()
        self.use_genai_prices = use_genai_prices
        self._snapshot = snapshot
        # genai-prices entries read from the prices topic replace the packaged ones. The packaged
        # snapshot still maps spellings to (provider id, model id), because its match rules are
        # code, not data.
        self._genai_override: dict[tuple[str, str], list[PriceEntry]] | None = None
        if genai_entries is not None:
            self._genai_override = {}
            for entry in genai_entries:
                self._genai_override.setdefault((entry.provider, entry.model), []).append(entry)
            for timeline_entries in self._genai_override.values():
                timeline_entries.sort(key=lambda entry: entry.effective_from)
        self._timelines: dict[tuple[str | None, str], Timeline | None] = {}
        self._operator_index: dict[str, list[PriceEntry]] = {}
        for entry in self.operator.entries:
            for name in entry.match:
                self._operator_index.setdefault(name, []).append(entry)
        self._known_providers: set[str] | None = None
        self._aliases = {(alias.provider, alias.deployment): alias for alias in self.operator.aliases}

    @property
    def snapshot(self) -> DataSnapshot:
        return self._snapshot or get_snapshot()

    def known_providers(self) -> set[str]:
        """Return provider ids priced by this book (bounded: used as metric label values)."""
        if self._known_providers is not None:
            return self._known_providers
        providers = {entry.provider for entry in self.operator.entries if entry.provider != "*"}
        if self.use_genai_prices:
            providers.update(provider.id for provider in self.snapshot.providers)
            if self._genai_override is not None:
                providers.update(provider for provider, _ in self._genai_override)
        providers.update(PROVIDER_ALIASES.values())
        self._known_providers = providers
        return providers

    def resolve(self, provider: str | None, model: str | None, at: datetime | None = None) -> PriceEntry | None:
        """Return the entry in force at `at` (default: now, UTC), or None when unpriced."""
        if not model:
            return None
        timeline = self.timeline(provider, model)
        if timeline is None:
            return None
        return timeline.at_ns(to_ns(at or datetime.now(tz=UTC)))

    def timeline(self, provider: str | None, model: str) -> Timeline | None:
        """Return the cached timeline of entries for a (provider, model) as reported."""
        key = (provider, model)
        if key in self._timelines:
            return self._timelines[key]
        timeline = self._build_timeline(canonical_provider(provider), model)
        self._timelines[key] = timeline
        if timeline is None:
            logger.info("no price found provider=%s model=%s", provider, model)
        return timeline

    def _build_timeline(self, provider: str | None, model: str) -> Timeline | None:
        alias = self._aliases.get((provider, model.strip().lower())) or self._aliases.get(
            (None, model.strip().lower())
        )
        if alias is not None:
            provider = alias.to_provider or provider
            model = alias.model
        candidates = model_candidates(provider, model)

        genai_entries = self._genai_lookup(candidates) if self.use_genai_prices else []
        if genai_entries:
            # An operator entry for genai-prices' canonical id also covers its dated snapshots
            # and other spellings (gpt-4o covers gpt-4o-2024-08-06).
            canonical = genai_entries[0]
            candidates = candidates + [(provider, canonical.model), (canonical.provider, canonical.model)]
        operator_entries = self._operator_lookup(candidates)
        if operator_entries:
            # Operator prices win from their first effective_from on; genai-prices fills the
            # time before it.
            first = min(entry.effective_from for entry in operator_entries)
            earlier = [entry for entry in genai_entries if entry.effective_from < first]
            combined = earlier + operator_entries
        else:
            combined = genai_entries
        return _timeline(combined) if combined else None

    def _operator_lookup(self, candidates: Iterable[tuple[str | None, str]]) -> list[PriceEntry]:
        for candidate_provider, name in candidates:
            found = [
                entry
                for entry in self._operator_index.get(name, ())
                if entry.provider in ("*", candidate_provider)
            ]
            if found:
                return sorted(found, key=lambda entry: entry.effective_from)
        return []

    def _genai_lookup(self, candidates: Iterable[tuple[str | None, str]]) -> list[PriceEntry]:
        snapshot = self.snapshot
        candidate_list = list(candidates)
        for candidate_provider, name in candidate_list:
            entries = self._genai_entries_for(self._genai_find(snapshot, candidate_provider, name))
            if not entries and self._genai_override is not None and candidate_provider is not None:
                # A model synced from newer genai-prices data than the installed package.
                entries = list(self._genai_override.get((candidate_provider, name), ()))
            if entries:
                return entries
        # A provider genai-prices does not know (a gateway, a self-hosted route): match the
        # model name alone, as genai-prices does when no provider is given.
        for candidate_provider, name in candidate_list:
            if candidate_provider is not None and find_provider_by_id(snapshot.providers, candidate_provider) is None:
                entries = self._genai_entries_for(self._genai_find(snapshot, None, name))
                if entries:
                    return entries
        return []

    def _genai_entries_for(
        self, found: tuple[gp_types.Provider, gp_types.ModelInfo] | None
    ) -> list[PriceEntry]:
        if found is None:
            return []
        if self._genai_override is None:
            return _genai_entries(*found)
        provider, model = found
        # A model the topic does not hold (its keys were deleted) is unpriced, not packaged.
        return list(self._genai_override.get((provider.id, model.id), ()))

    @staticmethod
    def _genai_find(
        snapshot: DataSnapshot, provider: str | None, name: str
    ) -> tuple[gp_types.Provider, gp_types.ModelInfo] | None:
        try:
            return snapshot.find_provider_model(name, None, provider, None)
        except LookupError:
            return None


def genai_price_entries(snapshot: DataSnapshot | None = None) -> list[PriceEntry]:
    """Return every entry of the packaged genai-prices data, model by model, oldest first."""
    snapshot = snapshot or get_snapshot()
    entries: list[PriceEntry] = []
    for provider in snapshot.providers:
        for model in provider.models:
            entries.extend(_genai_entries(provider, model))
    return entries


def default_price_book(operator_file: str | Path | None = None) -> PriceBook:
    """Build a price book from genai-prices plus an optional operator YAML file."""
    operator = load_operator_prices(operator_file) if operator_file else None
    return PriceBook(operator)


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
