"""``/api/v2/outbound/callabletimesets``: weekly contactable windows per IANA zone.

Contract: ``name`` (unique) and ``callableTimes`` are required; each entry needs a valid IANA
``timeZoneId`` and ``timeSlots`` of ``{startTime, stopTime}`` as ``HH:mm:ss`` (start before
stop, same day) and ``day`` 1-7 (Monday-Sunday).  PUT needs the current ``version``; a set
used by a campaign cannot be deleted (409 ``resource.in.use``).
"""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from genesys_sandbox.errors import ApiError, bad_request, invalid_value, name_exists, not_found
from genesys_sandbox.routes.common import (
    check_version,
    empty,
    name_filter,
    ok,
    opt_str,
    page,
    read_json,
    req_object,
    req_str,
    sandbox_of,
)
from genesys_sandbox.store import CallableTimeSet, Store, new_id
from genesys_sandbox.views import callable_time_set_view

__all__ = ["routes"]

HMS = re.compile(r"^([01]\d|2[0-3]):[0-5]\d:[0-5]\d$")


def _slot(raw: Any, where: str) -> dict[str, Any]:
    slot = req_object(raw, where)
    start = req_str(slot, "startTime", f"{where}.startTime")
    stop = req_str(slot, "stopTime", f"{where}.stopTime")
    for name, value in (("startTime", start), ("stopTime", stop)):
        if not HMS.match(value):
            raise invalid_value(f"'{where}.{name}' must be HH:mm:ss.", f"{where}.{name}")
    if start >= stop:
        raise invalid_value(f"'{where}' starts at or after it stops.", where)
    day = slot.get("day")
    if isinstance(day, bool) or not isinstance(day, int) or not 1 <= day <= 7:
        raise invalid_value(f"'{where}.day' must be 1 (Monday) to 7 (Sunday).", f"{where}.day")
    return {"startTime": start, "stopTime": stop, "day": day}


def _callable_times(body: dict[str, Any]) -> list[dict[str, Any]]:
    raw = body.get("callableTimes")
    if not raw:
        raise bad_request("The field 'callableTimes' is required.", "callableTimes")
    if not isinstance(raw, list):
        raise invalid_value("'callableTimes' must be a list.", "callableTimes")
    out = []
    for i, item in enumerate(raw):
        where = f"callableTimes[{i}]"
        entry = req_object(item, where)
        zone = req_str(entry, "timeZoneId", f"{where}.timeZoneId")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise invalid_value(f"Unknown time zone '{zone}'.", f"{where}.timeZoneId") from exc
        slots = entry.get("timeSlots")
        if not slots or not isinstance(slots, list):
            raise bad_request(f"'{where}.timeSlots' is required.", f"{where}.timeSlots")
        parsed: dict[str, Any] = {
            "timeSlots": [_slot(s, f"{where}.timeSlots[{j}]") for j, s in enumerate(slots)]
        }
        name = opt_str(entry, "name", f"{where}.name")
        if name is not None:
            parsed["name"] = name
        parsed["timeZoneId"] = zone
        out.append(parsed)
    return out


def _set_or_404(store: Store, set_id: str) -> CallableTimeSet:
    ts = store.time_sets.get(set_id)
    if ts is None:
        raise not_found("callable time set", set_id)
    return ts


async def create_set(request: Request) -> Response:
    body = req_object(await read_json(request))
    name = req_str(body, "name")
    times = _callable_times(body)
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        if store.name_taken(store.time_sets, name):
            raise name_exists("callable time set", name)
        ts = CallableTimeSet(new_id(), name, times, store.now, store.now)
        store.time_sets[ts.id] = ts
        return ok(callable_time_set_view(ts))


async def list_sets(request: Request) -> Response:
    sandbox = sandbox_of(request)
    matches = name_filter(request)
    with sandbox.lock:
        items = [t for t in sandbox.store.time_sets.values() if matches(t.name)]
        return ok(page(request, items, callable_time_set_view))


async def get_set(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        return ok(callable_time_set_view(_set_or_404(sandbox.store, request.path_params["setId"])))


async def put_set(request: Request) -> Response:
    body = req_object(await read_json(request))
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        ts = _set_or_404(store, request.path_params["setId"])
        check_version(body, ts.version, "callable time set")
        name = req_str(body, "name")
        times = _callable_times(body)
        if store.name_taken(store.time_sets, name, except_id=ts.id):
            raise name_exists("callable time set", name)
        ts.name, ts.callable_times = name, times
        ts.version += 1
        ts.date_modified = store.now
        return ok(callable_time_set_view(ts))


async def delete_set(request: Request) -> Response:
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        ts = _set_or_404(store, request.path_params["setId"])
        users = [c.name for c in store.campaigns.values() if c.callable_time_set_id == ts.id]
        if users:
            raise ApiError(409, "resource.in.use", f"The time set is used by: {', '.join(users)}.")
        del store.time_sets[ts.id]
    return empty(200)


BASE = "/api/v2/outbound/callabletimesets"
routes = [
    Route(BASE, create_set, methods=["POST"]),
    Route(BASE, list_sets, methods=["GET"]),
    Route(BASE + "/{setId}", get_set, methods=["GET"]),
    Route(BASE + "/{setId}", put_set, methods=["PUT"]),
    Route(BASE + "/{setId}", delete_set, methods=["DELETE"]),
]
