"""Recorded agent runs (Langfuse exports, AgentLab episodes) turned into SDK calls.

Parsing is pure and returns `ImportedRun` values; `publish` and `import_files` hand them to a
`pipeline.sdk.Tracer`.
"""

from pipeline.importers.model import ImportedFrame, ImportedRun, ImportedSpan, ImportFormatError
from pipeline.importers.publish import ImportSummary, PublishResult, import_files, import_paths, publish
from pipeline.importers.registry import FORMATS, detect_format, expand_paths, load_file

__all__ = [
    "FORMATS",
    "ImportFormatError",
    "ImportSummary",
    "ImportedFrame",
    "ImportedRun",
    "ImportedSpan",
    "PublishResult",
    "detect_format",
    "expand_paths",
    "import_files",
    "import_paths",
    "load_file",
    "publish",
]
