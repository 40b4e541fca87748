"""`spanline replay verify`: check that every frame row of a run has its exact bytes in S3."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import psycopg
from minio.error import S3Error

from pipeline.config import Settings
from pipeline.stores.objects import make_client

logger = logging.getLogger(__name__)

DEFAULT_GAP_THRESHOLD_S = 10.0
_READ_CHUNK = 1024 * 1024


@dataclass
class VerifyReport:
    """Outcome of verifying one run's frames against the object store."""

    run_id: str
    expected: int = 0
    present: int = 0
    missing: list[dict[str, Any]] = field(default_factory=list)
    mismatched: list[dict[str, Any]] = field(default_factory=list)
    time_gaps: list[dict[str, Any]] = field(default_factory=list)
    seq_gaps: list[tuple[int, int]] = field(default_factory=list)
    gap_threshold_s: float = DEFAULT_GAP_THRESHOLD_S
    run_known: bool = True

    @property
    def identical(self) -> int:
        return self.present - len(self.mismatched)

    @property
    def ok(self) -> bool:
        """Return True when every expected frame is present and byte-identical."""
        return self.run_known and self.present == self.expected and not self.mismatched

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "expected": self.expected,
            "present": self.present,
            "identical": self.identical,
            "missing": self.missing,
            "mismatched": self.mismatched,
            "time_gaps": self.time_gaps,
            "seq_gaps": [list(gap) for gap in self.seq_gaps],
            "gap_threshold_s": self.gap_threshold_s,
            "ok": self.ok,
        }

    def render(self) -> str:
        """Return the report as text for a terminal."""
        if not self.run_known:
            return f"run {self.run_id}: not found (no spans and no frame rows)"
        percent = 100.0 * self.present / self.expected if self.expected else 100.0
        lines = [
            f"run {self.run_id}",
            f"  frames expected   {self.expected}",
            f"  present           {self.present} ({percent:.1f} %)",
            f"  identical         {self.identical}",
            f"  missing           {len(self.missing)}",
            f"  mismatched        {len(self.mismatched)}",
            f"  time gaps > {self.gap_threshold_s:g} s  {len(self.time_gaps)}",
            f"  seq gaps          {len(self.seq_gaps)}",
        ]
        for item in self.missing:
            lines.append(f"  MISSING    seq={item['seq']} step={item['step']} key={item['object_key']}")
        for item in self.mismatched:
            lines.append(
                f"  MISMATCH   seq={item['seq']} step={item['step']} expected={item['sha256']} actual={item['actual_sha256']}"
            )
        for gap in self.time_gaps:
            lines.append(f"  GAP        {gap['gap_s']:.1f} s after seq={gap['after_seq']} (step {gap['after_step']})")
        for first, last in self.seq_gaps:
            lines.append(f"  SEQ GAP    seq {first}..{last} has no frame row (dropped before storage)")
        lines.append("  result            " + ("OK: every frame present and identical" if self.ok else "FAILED"))
        return "\n".join(lines)


def verify_run(settings: Settings, run_id: str, gap_threshold_s: float = DEFAULT_GAP_THRESHOLD_S) -> VerifyReport:
    """Read every frame row of `run_id`, hash its S3 object and report what is missing or differs."""
    report = VerifyReport(run_id=run_id, gap_threshold_s=gap_threshold_s)
    with psycopg.connect(settings.database_dsn.reveal()) as connection:
        rows = connection.execute(
            "SELECT seq, step, sha256, object_key,"
            " (extract(epoch FROM capture_time) * 1000000)::bigint * 1000 AS capture_ns"
            " FROM frames WHERE run_id = %s ORDER BY capture_time, seq",
            (run_id,),
        ).fetchall()
        if not rows:
            report.run_known = connection.execute(
                "SELECT EXISTS (SELECT 1 FROM spans WHERE run_id = %s)", (run_id,)
            ).fetchone()[0]
    report.expected = len(rows)

    client = make_client(settings)
    # Rows with the same content share one object; each object is read once.
    digests: dict[str, str | None] = {}
    for seq, step, sha256, object_key, _ in rows:
        if object_key not in digests:
            digests[object_key] = _object_sha256(client, settings.s3_bucket, object_key)
        actual = digests[object_key]
        item = {"seq": seq, "step": step, "sha256": sha256, "object_key": object_key}
        if actual is None:
            report.missing.append(item)
            continue
        report.present += 1
        if actual != sha256:
            report.mismatched.append({**item, "actual_sha256": actual})

    gap_ns = int(gap_threshold_s * 1e9)
    for previous, current in zip(rows, rows[1:]):
        if current[4] - previous[4] > gap_ns:
            report.time_gaps.append(
                {"after_seq": previous[0], "after_step": previous[1], "gap_s": (current[4] - previous[4]) / 1e9}
            )
    seqs = sorted({row[0] for row in rows})
    for before, after in zip(seqs, seqs[1:]):
        if after - before > 1:
            report.seq_gaps.append((before + 1, after - 1))
    logger.info(
        "verified run_id=%s expected=%d present=%d mismatched=%d", run_id, report.expected, report.present, len(report.mismatched)
    )
    return report


def _object_sha256(client: Any, bucket: str, key: str) -> str | None:
    """Return the SHA-256 hex of an object streamed in chunks, or None when it does not exist."""
    try:
        response = client.get_object(bucket, key)
    except S3Error as error:
        if error.code in {"NoSuchKey", "NoSuchObject", "NotFound"}:
            return None
        raise
    digest = hashlib.sha256()
    try:
        for chunk in response.stream(_READ_CHUNK):
            digest.update(chunk)
    finally:
        response.close()
        response.release_conn()
    return digest.hexdigest()
