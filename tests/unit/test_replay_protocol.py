"""Replay control messages and the binary frame header."""

from __future__ import annotations

import hashlib
import json

import pytest

from pipeline.replay.protocol import (
    HEADER_SIZE,
    ProtocolError,
    decode_frame_message,
    encode_frame_header,
    parse_control,
)


def test_seek_to_step_parses() -> None:
    control = parse_control(json.dumps({"type": "seek", "step": 4, "id": 7}))
    assert control.type == "seek"
    assert control.step == 4
    assert control.request_id == 7
    assert control.time_ns is None


def test_seek_to_time_parses() -> None:
    control = parse_control('{"type": "seek", "time_ns": 1700000000000000000}')
    assert control.time_ns == 1_700_000_000_000_000_000


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("not json", "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ('{"type": "rewind"}', "unknown_type"),
        ('{"type": "seek"}', "invalid_field"),
        ('{"type": "seek", "step": 1, "seq": 2}', "invalid_field"),
        ('{"type": "seek", "step": "3"}', "invalid_field"),
        ('{"type": "seek", "step": true}', "invalid_field"),
        ('{"type": "seek", "seq": -1}', "out_of_range"),
        ('{"type": "speed", "value": 32}', "out_of_range"),
        ('{"type": "speed", "value": 0.5}', "out_of_range"),
        ('{"type": "speed"}', "invalid_field"),
        ('{"type": "follow", "live": "yes"}', "invalid_field"),
        ('{"type": "open"}', "invalid_field"),
        ('{"type": "play", "id": [1]}', "invalid_field"),
    ],
)
def test_invalid_control_is_rejected_with_code(message: str, code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_control(message)
    assert caught.value.code == code
    assert str(caught.value)


def test_oversized_control_is_rejected() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_control(json.dumps({"type": "play", "pad": "x" * 5000}))
    assert caught.value.code == "too_large"


def test_error_keeps_request_id() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_control('{"type": "speed", "value": 99, "id": "s1"}')
    assert caught.value.request_id == "s1"


@pytest.mark.parametrize("speed", [1, 2.5, 16])
def test_speed_within_range_accepted(speed: float) -> None:
    assert parse_control(json.dumps({"type": "speed", "value": speed})).speed == float(speed)


def test_frame_header_round_trip_keeps_bytes() -> None:
    data = bytes(range(256)) * 3
    digest = hashlib.sha256(data).hexdigest()
    header = encode_frame_header(
        seq=12, step=3, capture_ns=1_700_000_000_123_456_789, content_type="image/png",
        sha256_hex=digest, generation=5, flags=2,
    )
    assert len(header) == HEADER_SIZE == 64
    decoded, payload = decode_frame_message(header + data)
    assert payload == data
    assert decoded.seq == 12
    assert decoded.step == 3
    assert decoded.capture_ns == 1_700_000_000_123_456_789
    assert decoded.content_type == "image/png"
    assert decoded.sha256_hex == digest
    assert decoded.generation == 5
    assert decoded.flags == 2


def test_frame_header_unknown_type_is_code_zero() -> None:
    header = encode_frame_header(
        seq=0, step=1, capture_ns=0, content_type="video/webm", sha256_hex="00" * 32
    )
    assert header[4] == 0


def test_frame_header_rejects_short_hash() -> None:
    with pytest.raises(ValueError):
        encode_frame_header(seq=0, step=1, capture_ns=0, content_type="image/png", sha256_hex="abcd")


def test_decode_rejects_wrong_magic() -> None:
    with pytest.raises(ValueError):
        decode_frame_message(b"XXXX" + bytes(60))
