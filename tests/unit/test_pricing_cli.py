"""`spanline prices` subcommands that need no database."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import main

FIXTURE = str(Path(__file__).resolve().parents[1] / "fixtures" / "operator_prices.yaml")


def test_show_prints_dated_entry(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["prices", "--prices", FIXTURE, "show", "test-dated", "--provider", "testlab",
                 "--at", "2026-06-01T00:00:01Z"])
    out = capsys.readouterr().out
    assert code == 0
    assert "operator:testlab:test-dated:2026-06-01T00:00:00Z" in out
    assert "total" in out


def test_show_unknown_model_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prices", "show", "acme-llm-9"]) == 1
    assert "no price for model 'acme-llm-9'" in capsys.readouterr().err


def test_unpriced_unreachable_database_fails(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SPANLINE_DATABASE_DSN", "host=127.0.0.1 port=1 user=nobody dbname=none")
    assert main(["prices", "unpriced"]) == 1
    assert "cannot reach the database" in capsys.readouterr().err
