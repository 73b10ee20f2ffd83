"""Wire recording: every request a client sends to ``/api/v2`` and ``/oauth``, as evidence.

Contract
--------
* Off unless ``SandboxConfig.record_requests`` (CLI ``--record-requests``).  When on,
  :class:`RequestRecorder` (the outermost middleware, so it sees requests the gate then
  refuses) appends one entry per request to the app's :class:`RequestLog`
  (``app.state.requests``): ``seq``, ``method``, ``path`` (raw), ``route`` (the sandbox's path
  template, or ``None`` for an unknown path), ``query`` (``[[name, value], ...]`` in order),
  ``headers`` (lower-case names; ``authorization`` and ``cookie`` left out),
  ``auth_scheme`` (``"Bearer"``, ``"Basic"`` or ``None``: the scheme only, never the
  credential), ``content_type``, ``json`` (the parsed JSON body, or ``None``),
  ``has_body``, ``body_text`` (the body when it is not JSON: form fields, with
  ``client_secret`` masked, or raw text) and ``status`` (``None`` if no answer went out).
* ``GET /sandbox/requests`` serves the log; ``POST /sandbox/reset`` clears it.
* Product-agnostic: the recorder only observes; it never changes a request or an answer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RECORDED_PREFIXES", "RequestLog", "RequestRecorder"]

RECORDED_PREFIXES = ("/api/v2/", "/oauth/")
_SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_SECRET_FORM_FIELDS = frozenset({"client_secret", "password"})


class RequestLog:
    """A thread-safe, in-memory list of recorded requests."""

    def __init__(self, *, enabled: bool = False) -> None:
        self.enabled = enabled
        self._entries: list[dict[str, Any]] = []
        self._seq = 0
        self._lock = threading.Lock()

    def append(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._seq += 1
            self._entries.append({"seq": self._seq, **entry})

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _route_template(routes: Sequence[BaseRoute], scope: Scope) -> str | None:
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return getattr(route, "path", None)
    return None


def _body_fields(raw: bytes, content_type: str) -> tuple[Any, str | None]:
    if not raw.strip():
        return None, None
    text = raw.decode("utf-8", "replace")
    if "json" in content_type:
        try:
            return json.loads(text), None
        except ValueError:
            return None, text
    if "x-www-form-urlencoded" in content_type:
        pairs = [
            (k, "***" if k in _SECRET_FORM_FIELDS else v)
            for k, v in parse_qsl(text, keep_blank_values=True)
        ]
        return None, urlencode(pairs)
    return None, text


class RequestRecorder:
    """Pure ASGI middleware: reads the body once, replays it, records the request."""

    def __init__(self, app: ASGIApp, log: RequestLog, routes: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self.log = log
        self.routes = list(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (self.log.enabled and path.startswith(RECORDED_PREFIXES)):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        pending: list[Message] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                pending.append(message)
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks)
        replay: list[Message] = [{"type": "http.request", "body": raw, "more_body": False}]
        replay += pending

        async def replayed() -> Message:
            return replay.pop(0) if replay else await receive()

        status: list[int] = []

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, replayed, watched)
        finally:
            self.log.append(self._entry(scope, raw, status[0] if status else None))

    def _entry(self, scope: Scope, raw: bytes, status: int | None) -> dict[str, Any]:
        headers: dict[str, str] = {}
        auth_scheme = None
        for name_b, value_b in scope.get("headers", []):
            name, value = name_b.decode("latin-1").lower(), value_b.decode("latin-1")
            if name == "authorization":
                auth_scheme = value.split(" ", 1)[0] or None
            if name not in _SECRET_HEADERS:
                headers[name] = value
        content_type = headers.get("content-type", "")
        parsed, text = _body_fields(raw, content_type)
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        return {
            "method": scope["method"],
            "path": scope["path"],
            "route": _route_template(self.routes, scope),
            "query": [[k, v] for k, v in query],
            "headers": headers,
            "auth_scheme": auth_scheme,
            "content_type": content_type or None,
            "json": parsed,
            "has_body": bool(raw.strip()),
            "body_text": text,
            "status": status,
        }
