"""The gate in front of ``/api/v2``: correlation ids, auth, rate limit, faults, counters.

Contract, in the order applied to every ``/api/v2`` request:

1. a fresh correlation id (``ININ-Correlation-Id`` header on every answer, ``contextId`` in
   error bodies); ``Faults.latency_ms`` of delay;
2. bearer-token check (401 ``authentication.required`` / ``bad.credentials`` /
   ``credentials.expired``), then the per-token rate limit (429 + ``Retry-After``);
3. one fault draw: ``rate_429`` -> 429 ``too.many.requests`` + ``Retry-After:
   retry_after_seconds``; else ``rate_5xx`` -> 503 ``service.unavailable`` — both before any
   work is done;
4. for POST/PUT/PATCH/DELETE, a second draw for ``drop_after_commit_rate``: the handler runs
   and commits, the status line and headers go out, then the connection is dropped without a
   body (the ASGI app raises :class:`ConnectionDropped`, uvicorn aborts the connection).  Only
   successful answers are dropped: a rejected request committed nothing.

``/oauth/token`` and the signed download URLs (``/signed-downloads/*``) are counted but not
gated; ``/sandbox/*`` is neither.  The server's
"Exception in ASGI application" log of an injected drop is shortened to one warning line by
:func:`quiet_injected_drops`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genesys_sandbox.errors import CORRELATION_HEADER, ApiError
from genesys_sandbox.runtime import Sandbox

__all__ = ["ApiGate", "ConnectionDropped", "quiet_injected_drops"]

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_HEADER = CORRELATION_HEADER.lower().encode("latin-1")


class ConnectionDropped(Exception):
    """Raised after the response head is sent, so the server aborts the connection."""


class _InjectedDropFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], ConnectionDropped):
            record.msg, record.args, record.exc_info = str(record.exc_info[1]), (), None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_DROP_FILTER = _InjectedDropFilter()


def quiet_injected_drops(logger_name: str = "uvicorn.error") -> None:
    """Log injected drops on ``logger_name`` as one warning line instead of a traceback."""
    logger = logging.getLogger(logger_name)
    if _DROP_FILTER not in logger.filters:
        logger.addFilter(_DROP_FILTER)


class ApiGate:
    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith("/sandbox"):
            await self.app(scope, receive, send)
            return
        sandbox = self.sandbox
        api = path.startswith("/api/v2")
        correlation = str(uuid.uuid4())
        scope.setdefault("state", {})["correlation_id"] = correlation

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                with sandbox.lock:
                    sandbox.stats.by_status[message["status"]] += 1
                headers = list(message.get("headers", []))
                if api and not any(k.lower() == _HEADER for k, _ in headers):
                    headers.append((_HEADER, correlation.encode("latin-1")))
                    message = {**message, "headers": headers}
            await send(message)

        with sandbox.lock:
            sandbox.stats.requests += 1
            faults = sandbox.faults
        if not api:
            await self.app(scope, receive, counted)
            return
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        try:
            drop = self._admit(scope, faults)
        except ApiError as err:
            await err.response(correlation)(scope, receive, counted)
            return
        if not drop:
            await self.app(scope, receive, counted)
            return

        async def dropping(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                await counted(message)
                with sandbox.lock:
                    sandbox.stats.injected_drops += 1
                raise ConnectionDropped("injected fault: connection dropped after commit")
            await counted(message)

        await self.app(scope, receive, dropping)

    def _admit(self, scope: Scope, faults: Any) -> bool:
        """Raise the gate's error answers; return whether to drop the connection after commit."""
        sandbox = self.sandbox
        headers = Headers(scope=scope)
        with sandbox.lock:
            try:
                token = sandbox.tokens.authenticate(
                    headers.get("authorization"), faults.expire_tokens_after_requests
                )
                sandbox.tokens.admit(token, sandbox.config.rate_limit_per_minute)
            except ApiError as err:
                if err.code == "credentials.expired":
                    sandbox.stats.expired_token_rejections += 1
                elif err.status == 429:
                    sandbox.stats.rate_limit_rejections += 1
                raise
            draw = sandbox.rng.random()
            drop = (
                scope["method"] in MUTATING
                and faults.drop_after_commit_rate > 0
                and sandbox.rng.random() < faults.drop_after_commit_rate
            )
            if draw < faults.rate_429:
                sandbox.stats.injected_429 += 1
                raise ApiError(
                    429,
                    "too.many.requests",
                    "Rate limit exceeded the maximum. Retry the request in "
                    f"[{faults.retry_after_seconds}] seconds",
                    headers={"Retry-After": str(faults.retry_after_seconds)},
                )
            if draw < faults.rate_429 + faults.rate_5xx:
                sandbox.stats.injected_5xx += 1
                raise ApiError(503, "service.unavailable", "The service is currently unavailable.")
            return drop
