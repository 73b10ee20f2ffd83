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
* ``GET /sandbox/ledger``, ``GET /sandbox/stats``.
* Carrier side (``genesys_sandbox.carrier``), all as of the virtual clock:
  ``GET /sandbox/carrier/twilio/messages`` -> ``{"messages": [...]}`` (Message resources);
  ``GET /sandbox/carrier/twilio/bulkexport/{YYYY-MM-DD}`` -> a BulkExport day file (JSON lines,
  messages created that UTC day; gzip with ``?gzip=true``);
  ``GET /sandbox/carrier/twilio/usage/monthly?month=YYYY-MM`` -> Usage Records
  ``{"usage_records": [{category: "sms-outbound", count, usage (segments), price, ...}]}``
  over the messages priced so far (default: the clock's month);
  ``GET /sandbox/carrier/aws_eum/events[?day=YYYY-MM-DD]`` -> AWS End User Messaging SMS
  events (JSON lines) of the sends routed to the second carrier (``carrier_routing``);
  ``GET /sandbox/carrier/injected`` -> ``{"injected": [...]}``: every injected discrepancy
  (``kind`` billed_twice | billed_not_sent | price_change | segment_mismatch | stays_pending,
  ``carrier``, ``carrier_message_id``, ``ledger_id``, ``reference``, ``to``, ``sent_at``,
  ``detail``), switched on by the ``carrier_*_rate`` switches of ``PUT /sandbox/config``.
"""

from __future__ import annotations

import calendar
import gzip
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from genesys_sandbox.carrier import ACCOUNT_SID, AWS_EUM, TWILIO
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
        records = [m.render(now) for m in sandbox.store.carrier if m.carrier == TWILIO]
        return JSONResponse({"messages": records})


def _lines(items: list[dict[str, Any]], *, compress: bool = False) -> Response:
    body = "".join(json.dumps(item) + "\n" for item in items).encode()
    if compress:
        return Response(gzip.compress(body, mtime=0), media_type="application/gzip")
    return Response(body, media_type="application/x-ndjson")


async def twilio_bulkexport(request: Request) -> Response:
    try:
        day = date.fromisoformat(request.path_params["day"])
    except ValueError:
        return _error("day must be YYYY-MM-DD")
    sandbox = sandbox_of(request)
    with sandbox.lock:
        now = sandbox.store.now
        lines = [
            m.bulkexport(now)
            for m in sandbox.store.carrier
            if m.carrier == TWILIO and m.sent_at.date() == day
        ]
    return _lines(lines, compress=request.query_params.get("gzip") == "true")


async def twilio_usage_monthly(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        now = sandbox.store.now
        month = request.query_params.get("month", now.strftime("%Y-%m"))
        try:
            start = datetime.strptime(month, "%Y-%m").date()
        except ValueError:
            return _error("month must be YYYY-MM")
        end = start.replace(day=calendar.monthrange(start.year, start.month)[1])
        count = segments = 0
        total = Decimal("0")
        for m in sandbox.store.carrier:
            price = m.price(now)
            if m.carrier != TWILIO or price is None or not start <= m.sent_at.date() <= end:
                continue
            count += 1
            segments += m.segments
            total -= Decimal(price)
    record = {
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "as_of": iso(now),
        "category": "sms-outbound",
        "count": str(count),
        "count_unit": "messages",
        "description": "SMS Outbound",
        "price": f"{total:.5f}",
        "price_unit": "usd",
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "usage": str(segments),
        "usage_unit": "segments",
    }
    return JSONResponse({"usage_records": [record]})


async def aws_eum_events(request: Request) -> Response:
    day_text = request.query_params.get("day")
    try:
        day = date.fromisoformat(day_text) if day_text else None
    except ValueError:
        return _error("day must be YYYY-MM-DD")
    sandbox = sandbox_of(request)
    with sandbox.lock:
        now = sandbox.store.now
        events = [
            e for m in sandbox.store.carrier if m.carrier == AWS_EUM for e in m.aws_events(now)
        ]
    if day is not None:
        events = [
            e
            for e in events
            if datetime.fromtimestamp(int(e["eventTimestamp"]) / 1000, UTC).date() == day
        ]
    events.sort(key=lambda e: (e["eventTimestamp"], e["messageId"]))
    return _lines(events)


async def carrier_injected(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        return JSONResponse({"injected": list(sandbox.store.carrier_injected)})


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
    Route("/sandbox/carrier/twilio/bulkexport/{day}", twilio_bulkexport, methods=["GET"]),
    Route("/sandbox/carrier/twilio/usage/monthly", twilio_usage_monthly, methods=["GET"]),
    Route("/sandbox/carrier/aws_eum/events", aws_eum_events, methods=["GET"]),
    Route("/sandbox/carrier/injected", carrier_injected, methods=["GET"]),
    Route("/sandbox/stats", stats, methods=["GET"]),
    Route("/sandbox/requests", recorded_requests, methods=["GET"]),
]
