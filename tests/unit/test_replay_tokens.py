"""Signed viewer tokens: signing, expiry and run scope."""

from __future__ import annotations

import pytest

from pipeline.replay.tokens import TokenError, TokenSigner, load_secret

SECRET = b"unit-test-secret-0123456789"


def test_token_opens_its_run() -> None:
    signer = TokenSigner(SECRET)
    token = signer.sign("run-a", ttl_s=60, now=1_000)
    claims = signer.verify_for_run(token, "run-a", now=1_030)
    assert claims.run_id == "run-a"
    assert claims.expires_at == 1_060


def test_token_for_run_a_rejected_for_run_b() -> None:
    signer = TokenSigner(SECRET)
    token = signer.sign("run-a", ttl_s=60, now=1_000)
    with pytest.raises(TokenError, match="run-b"):
        signer.verify_for_run(token, "run-b", now=1_001)


def test_expired_token_rejected() -> None:
    signer = TokenSigner(SECRET)
    token = signer.sign("run-a", ttl_s=60, now=1_000)
    with pytest.raises(TokenError, match="expired"):
        signer.verify(token, now=1_060)


def test_token_from_other_secret_rejected() -> None:
    token = TokenSigner(b"another-secret-0123456789").sign("run-a", now=1_000)
    with pytest.raises(TokenError, match="signature"):
        TokenSigner(SECRET).verify(token, now=1_001)


def test_altered_payload_rejected() -> None:
    signer = TokenSigner(SECRET)
    token = signer.sign("run-a", now=1_000)
    other = signer.sign("run-b", now=1_000)
    forged = ".".join([token.split(".")[0], other.split(".")[1], token.split(".")[2]])
    with pytest.raises(TokenError):
        signer.verify(forged, now=1_001)


@pytest.mark.parametrize("token", ["", "v1.abc", "v2.a.b", "not-a-token", "v1..", "v1.@@.@@"])
def test_malformed_token_rejected(token: str) -> None:
    with pytest.raises(TokenError):
        TokenSigner(SECRET).verify(token)


def test_list_token_is_not_a_run_token() -> None:
    signer = TokenSigner(SECRET)
    claims = signer.verify(signer.sign("*", now=1_000), now=1_001)
    assert claims.is_list_token
    with pytest.raises(TokenError):
        signer.verify_for_run(signer.sign("*", now=1_000), "run-a", now=1_001)


def test_unset_secret_is_random_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPANLINE_REPLAY_SECRET", raising=False)
    assert load_secret() != load_secret()


def test_short_secret_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANLINE_REPLAY_SECRET", "short")
    with pytest.raises(ValueError, match="at least"):
        load_secret()
