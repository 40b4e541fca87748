"""The replay WebSocket protocol: control messages, server messages and the binary frame header.

Pure functions only, so the rules are unit-tested without a server. docs/replay-protocol.md is
the reference for clients.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

PROTOCOL_VERSION = 1
MAGIC = b"SLF1"
# magic, content type code, flags, reserved, seq, step, seek generation, capture ns, sha256.
HEADER = struct.Struct(">4sBBHQIIq32s")
HEADER_SIZE = HEADER.size  # 64 bytes

FLAG_LIVE = 0x01  # the frame arrived while following a running run
FLAG_SEEK = 0x02  # the first frame sent after a seek: the view at the new position

# Codes for common types keep the header fixed-size; code 0 means "see the frame index".
CONTENT_TYPE_CODES: dict[str, int] = {
    "application/octet-stream": 0,
    "image/png": 1,
    "image/jpeg": 2,
    "image/webp": 3,
    "text/html": 4,
    "message/rfc822": 5,
    "text/plain": 6,
}
CONTENT_TYPES_BY_CODE = {code: name for name, code in CONTENT_TYPE_CODES.items()}

MIN_SPEED = 1.0
MAX_SPEED = 16.0
# A control message is a few hundred bytes; anything much larger is abuse, not a mistake.
MAX_CONTROL_BYTES = 4096

# Close codes in the private range 4000-4999 (RFC 6455 section 7.4.2).
CLOSE_PROTOCOL_ABUSE = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_INTERNAL = 4500

CONTROL_TYPES = frozenset({"open", "play", "pause", "seek", "speed", "follow", "ping"})


class ProtocolError(ValueError):
    """A control message the server cannot act on; `code` is a stable machine-readable name."""

    def __init__(self, code: str, message: str, request_id: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id


@dataclass(frozen=True)
class Control:
    """One validated control message.

    Only the fields of its type are set: run_id (open), time_ns / step / seq (seek, exactly one),
    speed (speed), live (follow).
    """

    type: str
    request_id: Any = None
    run_id: str | None = None
    time_ns: int | None = None
    step: int | None = None
    seq: int | None = None
    speed: float | None = None
    live: bool | None = None


def parse_control(text: str | bytes) -> Control:
    """Parse and validate one control message; raise ProtocolError naming the bad field."""
    size = len(text.encode() if isinstance(text, str) else text)
    if size > MAX_CONTROL_BYTES:
        raise ProtocolError(
            "too_large", f"control message of {size} bytes exceeds the {MAX_CONTROL_BYTES}-byte limit"
        )
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:
        raise ProtocolError("invalid_json", f"control message is not valid JSON: {error}") from None
    if not isinstance(message, dict):
        raise ProtocolError("invalid_message", "control message must be a JSON object")

    request_id = message.get("id")
    if request_id is not None and not isinstance(request_id, (str, int)):
        raise ProtocolError("invalid_field", "field 'id' must be a string or an integer")
    kind = message.get("type")
    if kind not in CONTROL_TYPES:
        raise ProtocolError(
            "unknown_type",
            f"control type {kind!r} is not one of {sorted(CONTROL_TYPES)}",
            request_id,
        )

    if kind == "open":
        run_id = message.get("run_id")
        if not isinstance(run_id, str) or not run_id:
            raise ProtocolError("invalid_field", "open needs a non-empty string 'run_id'", request_id)
        return Control(kind, request_id, run_id=run_id)
    if kind == "seek":
        return _parse_seek(message, request_id)
    if kind == "speed":
        speed = message.get("value")
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not math.isfinite(speed):
            raise ProtocolError("invalid_field", "speed needs a number 'value' from 1 to 16", request_id)
        if not MIN_SPEED <= speed <= MAX_SPEED:
            raise ProtocolError(
                "out_of_range", f"speed {speed} is outside 1-16; send a value from 1 to 16", request_id
            )
        return Control(kind, request_id, speed=float(speed))
    if kind == "follow":
        live = message.get("live", True)
        if not isinstance(live, bool):
            raise ProtocolError("invalid_field", "follow needs a boolean 'live'", request_id)
        return Control(kind, request_id, live=live)
    return Control(kind, request_id)


def _parse_seek(message: dict[str, Any], request_id: Any) -> Control:
    targets = {name: message[name] for name in ("time_ns", "step", "seq") if name in message}
    if len(targets) != 1:
        raise ProtocolError(
            "invalid_field", "seek needs exactly one of 'time_ns', 'step' or 'seq'", request_id
        )
    (name, value), = targets.items()
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError("invalid_field", f"seek field {name!r} must be an integer", request_id)
    if name in ("step", "seq") and value < 0:
        raise ProtocolError("out_of_range", f"seek {name} {value} is negative", request_id)
    return Control("seek", request_id, **{name: value})


def encode_frame_header(
    *,
    seq: int,
    step: int,
    capture_ns: int,
    content_type: str,
    sha256_hex: str,
    generation: int = 0,
    flags: int = 0,
) -> bytes:
    """Return the 64-byte header that precedes a frame's bytes in a binary message."""
    code = CONTENT_TYPE_CODES.get(content_type.split(";", 1)[0].strip().lower(), 0)
    digest = bytes.fromhex(sha256_hex)
    if len(digest) != 32:
        raise ValueError(f"sha256 {sha256_hex!r} is not 64 hex characters")
    return HEADER.pack(
        MAGIC, code, flags, 0, seq, max(step, 0), generation & 0xFFFFFFFF, capture_ns, digest
    )


@dataclass(frozen=True)
class FrameHeader:
    """A decoded binary frame header."""

    seq: int
    step: int
    capture_ns: int
    content_type: str
    sha256_hex: str
    generation: int
    flags: int


def decode_frame_message(message: bytes) -> tuple[FrameHeader, bytes]:
    """Split a binary message into its header and the frame's original bytes."""
    if len(message) < HEADER_SIZE:
        raise ValueError(f"binary message of {len(message)} bytes is shorter than the header")
    magic, code, flags, _, seq, step, generation, capture_ns, digest = HEADER.unpack_from(message)
    if magic != MAGIC:
        raise ValueError(f"binary message starts with {magic!r}, expected {MAGIC!r}")
    header = FrameHeader(
        seq=seq,
        step=step,
        capture_ns=capture_ns,
        content_type=CONTENT_TYPES_BY_CODE.get(code, "application/octet-stream"),
        sha256_hex=digest.hex(),
        generation=generation,
        flags=flags,
    )
    return header, message[HEADER_SIZE:]


def error_message(code: str, message: str, request_id: Any = None) -> dict[str, Any]:
    """Build the JSON error sent for a control message the server rejected."""
    reply: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if request_id is not None:
        reply["id"] = request_id
    return reply
