"""OTLP trace files (OTLP/JSON ExportTraceServiceRequest): parsed by pipeline.otel."""

from __future__ import annotations

from typing import Any

from pipeline.importers.model import ImportedRun, ImportFormatError

FORMAT_NAME = "otlp"


def looks_like(document: Any) -> bool:
    """Return True when a decoded JSON document is an OTLP/JSON ExportTraceServiceRequest."""
    return isinstance(document, dict) and isinstance(document.get("resourceSpans"), list)


def parse(document: Any, *, source: str = "", agent: str | None = None) -> list[ImportedRun]:
    """Map an OTLP/JSON document (or OTLP protobuf bytes) to runs with the rules of pipeline.otel."""
    from pipeline.otel.convert import OtlpDecodeError, imported_runs

    if not isinstance(document, (bytes, bytearray)) and not looks_like(document):
        raise ImportFormatError("not an OTLP/JSON export: expected a 'resourceSpans' list at the top level")
    try:
        return imported_runs(document, source=source, agent=agent)
    except OtlpDecodeError as error:
        raise ImportFormatError(str(error)) from None
