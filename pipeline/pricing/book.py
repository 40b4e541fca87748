"""The price book: resolves (provider, model, time) to one price entry."""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from genai_prices import types as gp_types
from genai_prices.data_snapshot import DataSnapshot, find_provider_by_id, get_snapshot

from pipeline.pricing.entries import EPOCH, PROVIDER_ALIASES, PriceEntry, _BEDROCK_MODEL_ID, _BEDROCK_REGION_PREFIX, canonical_provider
from pipeline.pricing.genai import _genai_entries
from pipeline.pricing.operator import OperatorPrices, load_operator_prices

logger = logging.getLogger(__name__)

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



def default_price_book(operator_file: str | Path | None = None) -> PriceBook:
    """Build a price book from genai-prices plus an optional operator YAML file."""
    operator = load_operator_prices(operator_file) if operator_file else None
    return PriceBook(operator)
