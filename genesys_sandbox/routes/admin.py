"""``/sandbox/*``: the sandbox's own control and inspection endpoints (not Genesys paths).

Contract: no authentication, no faults, no rate limit, not counted in ``/sandbox/stats``.
Errors are ``{"error": message}`` with status 400.

* ``POST /sandbox/reset`` wipes the org (config and tokens stay) and the wire recording.
* ``GET /sandbox/requests`` -> ``{"enabled", "count", "requests"}``: the recorded
  ``/api/v2`` and ``/oauth`` requests (``genesys_sandbox.wire``; on with ``record_requests``).
* ``GET|PUT /sandbox/faults``: PUT replaces the faults with the given fields (others default)
  and re-seeds their random draws.
* ``GET|PUT /sandbox/config``: the behaviour switches (``SandboxConfig.switches()``); PUT
  changes the given ones (same JSON names as the dataclass fields), all-or-nothing, and
  answers all of them.  They take effect at the next request or run.
* ``GET /sandbox/clock`` -> ``{"now"}``; ``POST /sandbox/run`` with ``{"until": ISO}`` or
  ``{"minutes": n}`` runs the campaigns (see ``runner``) and answers the run summary.
* ``GET /sandbox/ledger``, ``GET /sandbox/carrier/twilio/messages``, ``GET /sandbox/stats``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from genesys_sandbox.clock import iso, parse_instant
from genesys_sandbox.config import Faults
from genesys_sandbox.routes.common import sandbox_of
from genesys_sandbox.runner import run
from genesys_sandbox.wire import RequestLog

__all__ = ["routes"]


def _error(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


async def _body(request: Request) -> Any:
    raw = await request.body()
    return json.loads(raw) if raw.strip() else {}


async def reset(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        sandbox.reset()
        _requests_of(request).clear()
        return JSONResponse({"now": iso(sandbox.store.now)})


def _requests_of(request: Request) -> RequestLog:
    log = getattr(request.app.state, "requests", None)
    return log if isinstance(log, RequestLog) else RequestLog()


async def recorded_requests(request: Request) -> Response:
    log = _requests_of(request)
    entries = log.snapshot()
    return JSONResponse({"enabled": log.enabled, "count": len(entries), "requests": entries})


async def get_faults(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        return JSONResponse(sandbox.faults.to_dict())


async def put_faults(request: Request) -> Response:
    try:
        body = await _body(request)
        if not isinstance(body, dict):
            return _error("faults must be a JSON object")
        faults = Faults.from_mapping(body)
    except ValueError as exc:
        return _error(str(exc))
    sandbox = sandbox_of(request)
    with sandbox.lock:
        sandbox.set_faults(faults)
        return JSONResponse(faults.to_dict())


async def get_config(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        return JSONResponse(sandbox.config.switches())


async def put_config(request: Request) -> Response:
    try:
        body = await _body(request)
    except ValueError as exc:
        return _error(str(exc))
    if not isinstance(body, dict):
        return _error("config must be a JSON object")
    sandbox = sandbox_of(request)
    with sandbox.lock:
        try:
            sandbox.config.set_switches(body)
        except ValueError as exc:
            return _error(str(exc))
        return JSONResponse(sandbox.config.switches())


async def get_clock(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        return JSONResponse({"now": iso(sandbox.store.now)})


async def run_campaigns(request: Request) -> Response:
    try:
        body = await _body(request)
    except ValueError as exc:
        return _error(str(exc))
    if not isinstance(body, dict) or ("until" in body) == ("minutes" in body):
        return _error('give exactly one of {"until": ISO-8601} or {"minutes": n}')
    sandbox = sandbox_of(request)
    with sandbox.lock:
        store = sandbox.store
        if "until" in body:
            try:
                until = parse_instant(body["until"])
            except (ValueError, TypeError) as exc:
                return _error(f"until: {exc}")
        else:
            minutes = body["minutes"]
            if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 0:
                return _error("minutes must be a non-negative integer")
            until = store.now + timedelta(minutes=minutes)
        if until < store.now:
            return _error(f"until is before the virtual clock ({iso(store.now)})")
        summary = run(store, until)
        return JSONResponse(summary.to_dict(store.now))


async def ledger(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        return JSONResponse(sandbox.store.ledger_snapshot())


async def carrier_messages(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        now = sandbox.store.now
        return JSONResponse({"messages": [m.render(now) for m in sandbox.store.carrier]})


async def stats(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        return JSONResponse(sandbox.stats.snapshot())


routes = [
    Route("/sandbox/reset", reset, methods=["POST"]),
    Route("/sandbox/faults", get_faults, methods=["GET"]),
    Route("/sandbox/faults", put_faults, methods=["PUT"]),
    Route("/sandbox/config", get_config, methods=["GET"]),
    Route("/sandbox/config", put_config, methods=["PUT"]),
    Route("/sandbox/clock", get_clock, methods=["GET"]),
    Route("/sandbox/run", run_campaigns, methods=["POST"]),
    Route("/sandbox/ledger", ledger, methods=["GET"]),
    Route("/sandbox/carrier/twilio/messages", carrier_messages, methods=["GET"]),
    Route("/sandbox/stats", stats, methods=["GET"]),
    Route("/sandbox/requests", recorded_requests, methods=["GET"]),
]
