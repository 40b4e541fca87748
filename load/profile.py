"""Where a span worker spends its time: py-spy samples grouped by pipeline stage."""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections import Counter
from pathlib import Path

logger = logging.getLogger(__name__)

# First match wins, tested on the whole stack of a sample, most specific stage first.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("COPY", ("span_sink.py:_copy", "_copy (pipeline/stores/span_sink.py", "copy_types.py")),
    ("commit and offsets", ("offsets.py", "commit (", "transaction", "lock_next_offsets")),
    ("decode", ("decode_span_batch", "framing.py", "fastavro")),
    ("price", ("pricing/",)),
    ("consume (faust, aiokafka)", ("faust/", "aiokafka/", "kafka/")),
)


def start_profile(pid: int, duration_s: float, output: Path) -> subprocess.Popen[bytes] | None:
    """Start py-spy on pid for duration_s, writing collapsed stacks; None when py-spy is missing."""
    py_spy = shutil.which("py-spy") or str(Path(__import__("sys").executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        logger.warning("py-spy not found; install it into the virtualenv to profile workers")
        return None
    return subprocess.Popen(
        [py_spy, "record", "--pid", str(pid), "--duration", str(int(duration_s)), "--rate", "50",
         "--format", "raw", "--nonblocking", "--output", str(output)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def stage_shares(collapsed: Path) -> dict[str, float]:
    """Return the share of busy samples per stage from a py-spy collapsed-stack file."""
    counts: Counter[str] = Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        counts[_stage_of(stack)] += int(count)
    total = sum(counts.values())
    return {stage: round(count / total, 3) for stage, count in counts.most_common()} if total else {}


def _stage_of(stack: str) -> str:
    for stage, needles in STAGES:
        if any(needle in stack for needle in needles):
            return stage
    return "other"
