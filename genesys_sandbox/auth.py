"""OAuth client-credentials tokens and the per-token rate limit.

Contract
--------
* A token lives ``token_ttl_seconds`` of *real* time (the ``monotonic`` source of the config),
  and, when ``Faults.expire_tokens_after_requests`` is N, dies after its N-th API request: the
  request after that is answered 401 ``credentials.expired``, as is every later one.
* The rate limit is a sliding 60 s window of real time per token.  A request over the limit is
  answered 429 with ``Retry-After`` = whole seconds until the oldest counted request leaves the
  window (at least 1); rejected requests are not counted, so a client that waits gets through.
* Not thread-safe on its own: callers hold the sandbox lock.
"""

from __future__ import annotations

import base64
import binascii
import math
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from genesys_sandbox.errors import ApiError

__all__ = ["Token", "TokenRegistry", "parse_basic_auth"]

WINDOW_SECONDS = 60.0


@dataclass
class Token:
    value: str
    client_id: str
    expires_at: float
    uses: int = 0
    window: deque[float] = field(default_factory=deque)


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """``(client_id, secret)`` from an ``Authorization: Basic ...`` header, else ``None``."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


class TokenRegistry:
    """Issues bearer tokens and admits API requests made with them."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._tokens: dict[str, Token] = {}

    def issue(self, client_id: str, ttl_seconds: int) -> Token:
        token = Token(
            value=secrets.token_urlsafe(48),
            client_id=client_id,
            expires_at=self._clock() + ttl_seconds,
        )
        self._tokens[token.value] = token
        return token

    def authenticate(self, authorization: str | None, max_uses: int | None) -> Token:
        """The token of a request, counting this use; raises the Genesys 401s."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise ApiError(
                401, "authentication.required", "No authentication bearer token specified."
            )
        token = self._tokens.get(authorization[7:].strip())
        if token is None:
            raise ApiError(401, "bad.credentials", "Invalid login credentials.")
        token.uses += 1
        if self._clock() >= token.expires_at or (max_uses is not None and token.uses > max_uses):
            raise ApiError(401, "credentials.expired", "The supplied credentials are expired.")
        return token

    def admit(self, token: Token, limit_per_minute: int) -> None:
        """Count one request in the token's window or raise 429 with ``Retry-After``."""
        now = self._clock()
        window = token.window
        while window and window[0] <= now - WINDOW_SECONDS:
            window.popleft()
        if len(window) >= limit_per_minute:
            wait = max(1, math.ceil(window[0] + WINDOW_SECONDS - now))
            raise ApiError(
                429,
                "too.many.requests",
                f"Rate limit exceeded the maximum. Retry the request in [{wait}] seconds",
                headers={"Retry-After": str(wait)},
                limit={
                    "key": "client.credentials.token.rate.per.minute",
                    "namespace": "platform.api",
                    "value": limit_per_minute,
                },
            )
        window.append(now)

    def reset_usage(self) -> None:
        """Forget use counts and rate windows; tokens stay valid."""
        for token in self._tokens.values():
            token.uses = 0
            token.window.clear()
