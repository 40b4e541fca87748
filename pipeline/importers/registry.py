"""Import formats by name, detection of a file's format from its content, and file loading."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.importers import agentlab, langfuse, otlp
from pipeline.importers.model import ImportedRun, ImportFormatError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportFormat:
    """One importable format: how to recognise a decoded document and how to parse it."""

    name: str
    looks_like: Callable[[Any], bool]
    parse: Callable[..., list[ImportedRun]]


FORMATS: dict[str, ImportFormat] = {
    module.FORMAT_NAME: ImportFormat(module.FORMAT_NAME, module.looks_like, module.parse)
    for module in (langfuse, agentlab, otlp)
}
AUTO = "auto"


def detect_format(document: Any) -> str:
    """Return the name of the format whose shape `document` has.

    Raises ImportFormatError listing the known formats when none matches.
    """
    for name, import_format in FORMATS.items():
        if import_format.looks_like(document):
            return name
    raise ImportFormatError(
        "unknown file content: expected a Langfuse export ('trace' and 'observations'), an "
        "AgentLab episode ('steps') or OTLP JSON ('resourceSpans'); pass --format to force one"
    )


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Return the files named by `paths`, each directory replaced by the JSON files under it, sorted.

    A path that does not exist is returned unchanged so the caller reports it as a failed file.
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(child for child in path.rglob("*.json") if child.is_file()))
        else:
            files.append(path)
    return files


def load_file(path: Path, format_name: str = AUTO, *, agent: str | None = None) -> list[ImportedRun]:
    """Read one file and parse it with the named format, or the detected one for `auto`.

    Raises ImportFormatError with the file name and the reason on any unreadable or invalid file.
    """
    if format_name != AUTO and format_name not in FORMATS:
        raise ImportFormatError(f"unknown format {format_name!r}; choose one of: auto, {', '.join(FORMATS)}")
    if format_name == "otlp" and path.suffix != ".json":
        # OTLP protobuf files (TracesData or ExportTraceServiceRequest) are binary.
        try:
            payload = path.read_bytes()
        except OSError as error:
            raise ImportFormatError(f"{path}: cannot read the file: {error}") from None
        try:
            return FORMATS["otlp"].parse(payload, source=path.name, agent=agent)
        except ImportFormatError as error:
            raise ImportFormatError(f"{path}: {error}") from None
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ImportFormatError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ImportFormatError(f"{path}: cannot read the file: {error}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ImportFormatError(f"{path}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}") from None

    try:
        name = detect_format(document) if format_name == AUTO else format_name
        runs = FORMATS[name].parse(document, source=path.name, agent=agent)
    except ImportFormatError as error:
        raise ImportFormatError(f"{path}: {error}") from None
    logger.debug("parsed file=%s format=%s runs=%d", path, name, len(runs))
    return runs
