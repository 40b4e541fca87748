"""Traffic shape: what spans look like, derived from recorded real runs or a built-in default.

A shape holds empirical samples (not the runs themselves): span kind weights, attribute JSON
sizes in bytes, token counts of LLM spans, models and span durations per kind. The generator
draws from these samples with replacement, so the load has the real mix without carrying any of
the recorded content.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import shared_data_dir

logger = logging.getLogger(__name__)

RUN_FOLDERS = ("langfuse-exports", "agentlab-browser")


@dataclass(frozen=True)
class TrafficShape:
    """Empirical samples the generator draws span fields from."""

    source: str
    kind_weights: Mapping[str, float]
    # Bytes of the compact attributes JSON, per span.
    attribute_bytes: tuple[int, ...]
    # (provider, model) -> weight among LLM spans.
    model_weights: Mapping[tuple[str, str], float]
    # (input, output, cache_read, reasoning) per LLM span; None means unknown.
    llm_tokens: tuple[tuple[int | None, int | None, int | None, int | None], ...]
    # Span duration in milliseconds, per kind.
    duration_ms: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        """Return a few figures that describe the shape, for reports."""
        sizes = sorted(self.attribute_bytes)
        return {
            "source": self.source,
            "kind_weights": {kind: round(weight, 3) for kind, weight in self.kind_weights.items()},
            "attribute_bytes_p50": sizes[len(sizes) // 2],
            "attribute_bytes_mean": round(sum(sizes) / len(sizes)),
            "attribute_bytes_p90": sizes[int(len(sizes) * 0.9)],
            "models": sorted(f"{provider}/{model}" for provider, model in self.model_weights),
            "llm_token_samples": len(self.llm_tokens),
        }


# Built-in default, written by hand to resemble multi-step agent runs: mostly LLM and agent/plan
# spans, attributes of a few hundred bytes to ~10 KB with a long tail, prompts of 50-3,000 tokens.
DEFAULT_SHAPE = TrafficShape(
    source="built-in default",
    kind_weights={"llm": 0.33, "agent": 0.25, "plan": 0.2, "tool": 0.15, "browser": 0.07},
    attribute_bytes=(
        300, 420, 450, 480, 520, 560, 600, 650, 700, 720, 760, 800, 850, 900, 1000,
        1100, 1300, 1600, 1900, 2300, 2800, 3400, 4200, 5600, 7000, 9000, 10500, 13000,
    ),
    model_weights={
        ("openai", "gpt-4o-mini"): 0.45,
        ("openai", "gpt-4o"): 0.3,
        ("google", "gemini-2.5-flash"): 0.15,
        ("openai", "gpt-4.1"): 0.1,
    },
    llm_tokens=(
        (1400, 80, None, None), (1500, 65, None, None), (600, 240, None, None),
        (150, 25, None, None), (1600, 400, 0, 0), (700, 210, None, None),
        (2400, 50, None, None), (3000, 170, 1024, None), (40, 900, None, 1100),
        (90, 40, 0, 0), (1200, None, None, None),
    ),
    duration_ms={
        "llm": (900.0, 1500.0, 2200.0, 3500.0, 7000.0),
        "agent": (3000.0, 7500.0, 12000.0, 16000.0),
        "plan": (500.0, 2000.0, 9000.0, 13000.0),
        "tool": (5.0, 300.0, 700.0, 4000.0, 14000.0),
        "browser": (150.0, 190.0, 210.0, 230.0),
    },
)


def load_shape(data_dir: Path | None = None) -> TrafficShape:
    """Derive the shape from the recorded runs when they are present, else return the default."""
    runs_dir = (data_dir or shared_data_dir()) / "runs"
    files = [
        path
        for folder in RUN_FOLDERS
        if (runs_dir / folder).is_dir()
        for path in sorted((runs_dir / folder).glob("*.json"))
    ]
    if not files:
        logger.info("no recorded runs found at %s; using the built-in default shape", runs_dir)
        return DEFAULT_SHAPE
    try:
        return derive_shape(files)
    except (ValueError, OSError) as error:
        logger.warning("could not derive a shape from %s (%s); using the built-in default",
                       runs_dir, error)
        return DEFAULT_SHAPE


def derive_shape(files: list[Path]) -> TrafficShape:
    """Compute kind mix, attribute sizes, tokens, models and durations from recorded run files."""
    # Imported lazily: the importers pull in the SDK, which the default shape does not need.
    from pipeline.importers.registry import load_file

    kinds: Counter[str] = Counter()
    models: Counter[tuple[str, str]] = Counter()
    attribute_bytes: list[int] = []
    llm_tokens: list[tuple[int | None, int | None, int | None, int | None]] = []
    durations: dict[str, list[float]] = {}
    for path in files:
        for run in load_file(path):
            for span in run.spans:
                kinds[span.kind] += 1
                text = json.dumps(span.attributes or {}, separators=(",", ":"))
                attribute_bytes.append(len(text.encode()))
                durations.setdefault(span.kind, []).append((span.end_ns - span.start_ns) / 1e6)
                if span.kind == "llm" and span.model:
                    models[(span.provider or "unknown", span.model)] += 1
                    usage = span.usage
                    if usage is not None:
                        llm_tokens.append((
                            usage.input_tokens, usage.output_tokens,
                            usage.cache_read_tokens, usage.reasoning_tokens,
                        ))
    total = sum(kinds.values())
    if total == 0 or not models or not llm_tokens:
        raise ValueError(f"the {len(files)} run files hold no LLM spans with usage")
    model_total = sum(models.values())
    return TrafficShape(
        source=f"recorded runs ({len(files)} files, {total} spans)",
        kind_weights={kind: count / total for kind, count in kinds.most_common()},
        attribute_bytes=tuple(attribute_bytes),
        model_weights={key: count / model_total for key, count in models.most_common()},
        llm_tokens=tuple(llm_tokens),
        duration_ms={kind: tuple(values) for kind, values in durations.items()},
    )
