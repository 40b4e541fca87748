"""Frame codec: one captured view per Kafka message (`schemas/frame.avsc`)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, fields

from pipeline.wire.framing import SchemaRegistry, WireError, default_registry

FRAME_SCHEMA_NAME = "spanline.Frame"
FRAME_KINDS = ("viewport", "inbox")


@dataclass(frozen=True)
class Frame:
    """One captured view; `sha256` is the hex SHA-256 of `data`."""

    run_id: str
    step: int
    seq: int
    capture_ns: int
    kind: str
    content_type: str
    data: bytes
    sha256: str
    span_id: str | None = None
    width: int | None = None
    height: int | None = None

    @classmethod
    def build(
        cls,
        run_id: str,
        data: bytes,
        *,
        step: int,
        seq: int,
        capture_ns: int,
        content_type: str,
        kind: str = "viewport",
        span_id: str | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> "Frame":
        """Create a frame, computing the SHA-256 of `data`."""
        return cls(
            run_id=run_id,
            step=step,
            seq=seq,
            capture_ns=capture_ns,
            kind=kind,
            content_type=content_type,
            data=data,
            sha256=hashlib.sha256(data).hexdigest(),
            span_id=span_id,
            width=width,
            height=height,
        )


def encode_frame(frame: Frame, *, registry: SchemaRegistry | None = None) -> bytes:
    """Encode a frame into a framed Kafka value; the sha256 field is written as given."""
    registry = registry or default_registry()
    return registry.write(FRAME_SCHEMA_NAME, asdict(frame))


def decode_frame(value: bytes, *, registry: SchemaRegistry | None = None) -> Frame:
    """Decode a framed frame and verify its data against its sha256 field.

    Raises WireError: bad_magic, unknown_schema, truncated, invalid_batch, sha256_mismatch when
    the data does not hash to the sha256 field, or invalid_content_type when the content type is
    not a printable-ASCII `type/subtype` (the object store sends it as an HTTP header).
    """
    registry = registry or default_registry()
    record, _writer = registry.read(value, FRAME_SCHEMA_NAME)
    content_type = record["content_type"]
    if not is_valid_content_type(content_type):
        raise WireError(
            "invalid_content_type",
            f"frame run_id={record['run_id']} seq={record['seq']}: content type {content_type!r} is not "
            "printable ASCII of the form type/subtype (at most 255 characters)",
        )
    actual = hashlib.sha256(record["data"]).hexdigest()
    if actual != record["sha256"]:
        raise WireError(
            "sha256_mismatch",
            f"frame run_id={record['run_id']} seq={record['seq']}: data hashes to {actual}, "
            f"the sha256 field says {record['sha256']!r}",
        )
    # Fields a newer reader schema adds are ignored until Frame grows matching attributes.
    return Frame(**{name: record[name] for name in _FRAME_ATTRIBUTES})


# RFC 6838 type/subtype, then optional parameters; printable ASCII only, as in an HTTP header.
_CONTENT_TYPE = re.compile(r"[!-~]{1,127}/[!-~]{1,127}(;[ -~]{0,200})?")
def is_valid_content_type(content_type: str) -> bool:
    """Return True for a printable-ASCII `type/subtype[; parameters]` content type."""
    return _CONTENT_TYPE.fullmatch(content_type) is not None


_FRAME_ATTRIBUTES = tuple(frame_field.name for frame_field in fields(Frame))
