"""Signed viewer tokens: an HMAC-SHA256 over the run id and an expiry time.

A token is `v1.<payload>.<signature>`, both parts unpadded base64url. The payload is JSON
`{"r": run_id, "e": expiry_epoch_seconds}`; run id "*" is a list token, which opens the runs
list only and never a run.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass

from pipeline.config import ConfigError

logger = logging.getLogger(__name__)

SECRET_ENV = "SPANLINE_REPLAY_SECRET"
LIST_SCOPE = "*"
DEFAULT_TTL_S = 24 * 3600
# Short secrets make HMAC keys guessable; 16 bytes is the floor RFC 2104 suggests for SHA-256.
MIN_SECRET_BYTES = 16


class TokenError(Exception):
    """A token that is malformed, forged, expired or for another run; the message says which."""


@dataclass(frozen=True)
class TokenClaims:
    """The run a valid token opens and when it expires."""

    run_id: str
    expires_at: int

    @property
    def is_list_token(self) -> bool:
        return self.run_id == LIST_SCOPE


def load_secret() -> bytes:
    """Return the signing secret from SPANLINE_REPLAY_SECRET, or a random per-process one."""
    configured = os.environ.get(SECRET_ENV)
    if configured:
        secret = configured.encode()
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"{SECRET_ENV} is {len(secret)} bytes long; use at least {MIN_SECRET_BYTES} bytes"
            )
        return secret
    logger.warning(
        "%s is not set: using a random secret, so links stop working when this process exits "
        "and links printed by another process do not work here",
        SECRET_ENV,
    )
    return secrets.token_bytes(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Signs and checks viewer tokens with one secret."""

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("token secret is empty")
        self._secret = secret

    def sign(self, run_id: str, ttl_s: int = DEFAULT_TTL_S, now: float | None = None) -> str:
        """Return a token that opens `run_id` (or the runs list for "*") for `ttl_s` seconds."""
        if not run_id:
            raise ValueError("run id is empty; pass a run id or '*' for the runs list")
        if ttl_s <= 0:
            raise ValueError(f"ttl_s={ttl_s} must be a positive number of seconds")
        expires_at = int((time.time() if now is None else now) + ttl_s)
        payload = _b64(json.dumps({"r": run_id, "e": expires_at}, separators=(",", ":")).encode())
        return f"v1.{payload}.{self._signature(payload)}"

    def verify(self, token: str, now: float | None = None) -> TokenClaims:
        """Return the claims of a valid token; raise TokenError otherwise."""
        parts = token.split(".") if isinstance(token, str) else []
        if len(parts) != 3 or parts[0] != "v1":
            raise TokenError("token is malformed; request a new link with `spanline replay token RUN_ID`")
        _, payload, signature = parts
        if not hmac.compare_digest(signature, self._signature(payload)):
            raise TokenError("token signature is invalid; it was signed with another secret or altered")
        try:
            claims = json.loads(_unb64(payload))
            run_id, expires_at = claims["r"], int(claims["e"])
        except (ValueError, KeyError, TypeError):
            raise TokenError("token payload is malformed") from None
        if not isinstance(run_id, str) or not run_id:
            raise TokenError("token names no run")
        current = time.time() if now is None else now
        if current >= expires_at:
            raise TokenError(f"token expired at {expires_at} (epoch seconds); request a new link")
        return TokenClaims(run_id, expires_at)

    def verify_for_run(self, token: str, run_id: str, now: float | None = None) -> TokenClaims:
        """Return the claims if `token` is valid and opens exactly `run_id`; raise TokenError otherwise."""
        claims = self.verify(token, now)
        if claims.run_id != run_id:
            raise TokenError(f"token does not open run {run_id!r}")
        return claims

    def _signature(self, payload: str) -> str:
        mac = hmac.new(self._secret, b"spanline-replay-v1." + payload.encode("ascii", "replace"), hashlib.sha256)
        return _b64(mac.digest())
