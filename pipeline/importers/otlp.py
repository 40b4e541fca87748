"""OTLP trace files: the format name is reserved, the parser is not written yet."""

from __future__ import annotations

from typing import Any

from pipeline.importers.model import ImportedRun, ImportFormatError

FORMAT_NAME = "otlp"


def looks_like(document: Any) -> bool:
    """Return True when a decoded JSON document is an OTLP/JSON ExportTraceServiceRequest."""
    return isinstance(document, dict) and isinstance(document.get("resourceSpans"), list)


def parse(document: Any, *, source: str = "", agent: str | None = None) -> list[ImportedRun]:
    """Raise ImportFormatError: OTLP files cannot be imported yet."""
    raise ImportFormatError(
        "the otlp import format is not available yet; export the trace from Langfuse and import "
        "it with --format langfuse, or send it live to `spanline otlp`"
    )
