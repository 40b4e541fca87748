"""User mistakes on the command line end in one error line and exit 2, never a traceback."""

from __future__ import annotations

import pytest

from pipeline.cli import main
from pipeline.stores.retention import parse_duration


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SPANLINE_MAX_FRAME_BYTES", "abc", "SPANLINE_MAX_FRAME_BYTES='abc' is not a whole number of bytes"),
        ("SPANLINE_S3_SECURE", "maybe", "SPANLINE_S3_SECURE='maybe' is not a boolean"),
        ("SPANLINE_RUN_IDLE_TIMEOUT_S", "soon", "SPANLINE_RUN_IDLE_TIMEOUT_S='soon' is not a number of seconds"),
    ],
)
def test_bad_setting_prints_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)

    assert main(["prices", "show", "gpt-4o-mini"]) == 2
    error_output = capsys.readouterr().err.strip()
    assert error_output.startswith(f"error: {message}")
    assert "Traceback" not in error_output


def test_short_replay_secret_prints_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SPANLINE_REPLAY_SECRET", "abc")

    assert main(["replay", "token", "some-run"]) == 2
    assert "use at least 16 bytes" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "message"), [("0s", "below the minimum"), ("59m", "below the minimum"), ("99999999999w", "above the maximum")])
def test_retention_age_out_of_bounds(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)
