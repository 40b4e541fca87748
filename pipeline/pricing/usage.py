"""Token usage split into disjoint classes, the shape every span carries on the wire."""

from __future__ import annotations

from dataclasses import dataclass

USAGE_CLASSES = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
)


@dataclass(frozen=True)
class Usage:
    """Token counts in disjoint classes: no class is contained in another.

    `input_tokens` excludes cache reads and writes; `output_tokens` excludes reasoning. None means
    the source did not report that class (unknown), which is different from 0.
    """

    input_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cache_write_1h_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    audio_input_tokens: int | None = None
    audio_output_tokens: int | None = None
    source: str | None = None

    def is_unknown(self) -> bool:
        return all(getattr(self, name) is None for name in USAGE_CLASSES)
