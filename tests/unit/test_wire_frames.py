"""Frame codec: round trips and the sha256 check."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.wire import Frame, WireError, decode_frame, encode_frame

OPTIONAL_INT = st.one_of(st.none(), st.integers(min_value=0, max_value=2**31 - 1))


@st.composite
def frames(draw):
    return Frame.build(
        draw(st.text(max_size=40)),
        draw(st.binary(max_size=2048)),
        step=draw(st.integers(min_value=1, max_value=2**31 - 1)),
        seq=draw(st.integers(min_value=0, max_value=2**63 - 1)),
        capture_ns=draw(st.integers(min_value=0, max_value=2**63 - 1)),
        content_type=draw(st.sampled_from(["image/png", "image/jpeg", "text/html; charset=utf-8"])),
        kind=draw(st.sampled_from(["viewport", "inbox"])),
        span_id=draw(st.one_of(st.none(), st.text(alphabet="0123456789abcdef", min_size=16, max_size=16))),
        width=draw(OPTIONAL_INT),
        height=draw(OPTIONAL_INT),
    )


@settings(max_examples=200, deadline=None)
@given(frame=frames())
def test_frame_round_trips(frame):
    assert decode_frame(encode_frame(frame)) == frame


def test_frame_build_hashes_data():
    frame = Frame.build("r", b"abc", step=1, seq=0, capture_ns=1, content_type="image/png")

    assert frame.sha256 == hashlib.sha256(b"abc").hexdigest()


def test_empty_frame_data_round_trips():
    frame = Frame.build("r", b"", step=1, seq=0, capture_ns=1, content_type="text/html", kind="inbox")

    assert decode_frame(encode_frame(frame)).data == b""


def test_wrong_sha256_is_sha256_mismatch():
    frame = Frame.build("run-9", b"pixels", step=2, seq=4, capture_ns=1, content_type="image/png")
    tampered = dataclasses.replace(frame, data=b"pixelz")

    with pytest.raises(WireError) as caught:
        decode_frame(encode_frame(tampered))

    assert caught.value.reason == "sha256_mismatch"
    assert "run-9" in str(caught.value)
    assert "seq=4" in str(caught.value)


def test_unknown_frame_kind_rejected_on_encode():
    frame = Frame.build("r", b"x", step=1, seq=0, capture_ns=1, content_type="image/png", kind="pdf")

    with pytest.raises(WireError) as caught:
        encode_frame(frame)

    assert caught.value.reason == "invalid_batch"


@pytest.mark.parametrize("content_type", ["image/\x00png", "png", "", "image/png\r\nX-Injected: 1", "bild/übersicht"])
def test_invalid_content_type_rejected(content_type: str) -> None:
    frame = Frame(
        run_id="run-1", step=1, seq=0, capture_ns=1, kind="viewport", content_type=content_type,
        data=b"x", sha256=hashlib.sha256(b"x").hexdigest(), span_id=None, width=None, height=None,
    )
    with pytest.raises(WireError) as caught:
        decode_frame(encode_frame(frame))
    assert caught.value.reason == "invalid_content_type"


@pytest.mark.parametrize("content_type", ["image/png", "image/jpeg", "message/rfc822", "text/html; charset=utf-8"])
def test_usual_content_types_accepted(content_type: str) -> None:
    frame = Frame(
        run_id="run-1", step=1, seq=0, capture_ns=1, kind="viewport", content_type=content_type,
        data=b"x", sha256=hashlib.sha256(b"x").hexdigest(), span_id=None, width=None, height=None,
    )
    assert decode_frame(encode_frame(frame)).content_type == content_type
