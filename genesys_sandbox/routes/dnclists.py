"""``/api/v2/outbound/dnclists``: internal (``rds``) do-not-contact lists.

Contract: only ``dncSourceType`` ``rds`` is supported (others are 400 ``invalid.value``);
``contactMethod`` Phone, Email, Any or WhatsApp is required.  Phone numbers are matched on
their digits (10 digits taken as NANP, see ``store.normalize_phone``), e-mail addresses
case-insensitively.  An entry with ``expirationDateTime`` stops blocking at that virtual
instant.  Adding phone numbers to an Email list (or addresses to a Phone list) is 400.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from genesys_sandbox.errors import ApiError, bad_request, invalid_value, name_exists, not_found
from genesys_sandbox.routes.common import (
    empty,
    name_filter,
    ok,
    opt_instant,
    page,
    read_json,
    req_list,
    req_object,
    req_str,
    sandbox_of,
)
from genesys_sandbox.store import DncList, Store, new_id, normalize_phone
from genesys_sandbox.views import dnc_list_view

__all__ = ["routes"]

CONTACT_METHODS = ("Email", "Phone", "Any", "WhatsApp")
ECHOED = ("customExclusionColumn", "loginId", "campaignId", "dncCodes", "licenseId")


def _dnc_or_404(store: Store, dnc_id: str) -> DncList:
    dnc = store.dnc_lists.get(dnc_id)
    if dnc is None:
        raise not_found("DNC list", dnc_id)
    return dnc


async def create_dnc(request: Request) -> Response:
    body = req_object(await read_json(request))
    name = req_str(body, "name")
    source = req_str(body, "dncSourceType")
    if source != "rds":
        raise invalid_value("The sandbox supports dncSourceType 'rds' only.", "dncSourceType")
    method = req_str(body, "contactMethod")
    if method not in CONTACT_METHODS:
        raise invalid_value(f"Unknown contactMethod '{method}'.", "contactMethod")
    extra = {k: body[k] for k in ECHOED if body.get(k) is not None}
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        if store.name_taken(store.dnc_lists, name):
            raise name_exists("DNC list", name)
        dnc = DncList(new_id(), name, source, method, extra, store.now, store.now)
        store.dnc_lists[dnc.id] = dnc
        return ok(dnc_list_view(dnc))


async def list_dnc(request: Request) -> Response:
    sandbox = sandbox_of(request)
    matches = name_filter(request)
    with sandbox.lock:
        items = [d for d in sandbox.store.dnc_lists.values() if matches(d.name)]
        return ok(page(request, items, dnc_list_view))


async def get_dnc(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        return ok(dnc_list_view(_dnc_or_404(sandbox.store, request.path_params["dncId"])))


async def delete_dnc(request: Request) -> Response:
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        dnc = _dnc_or_404(store, request.path_params["dncId"])
        users = [c.name for c in store.campaigns.values() if dnc.id in c.dnc_list_ids]
        if users:
            raise ApiError(409, "resource.in.use", f"The DNC list is used by: {', '.join(users)}.")
        del store.dnc_lists[dnc.id]
    return empty(200)


def _strings(values: Any, what: str) -> list[str]:
    items = req_list(values, what)
    if not all(isinstance(v, str) and v.strip() for v in items):
        raise invalid_value(f"'{what}' must be a list of non-empty strings.", what)
    return items


def _change(
    dnc: DncList,
    kind: str,
    action: str,
    values: list[str],
    expires: datetime | None,
    store: Store,
) -> None:
    allowed = ("Phone", "Any") if kind == "phone" else ("Email", "Any")
    if dnc.contact_method not in allowed:
        raise invalid_value(
            f"DNC list '{dnc.name}' has contactMethod {dnc.contact_method}; it takes no {kind}s."
        )
    target = dnc.phones if kind == "phone" else dnc.emails
    keys = [normalize_phone(v) if kind == "phone" else v.strip().lower() for v in values]
    if action == "add":
        for key in keys:
            target[key] = expires
    else:
        for key in keys:
            target.pop(key, None)
    dnc.date_modified = store.now


async def _patch(request: Request, kind: str, values_key: str) -> Response:
    body = req_object(await read_json(request))
    action = req_str(body, "action")
    if action.lower() not in ("add", "remove"):
        raise invalid_value("'action' must be Add or Remove.", "action")
    values = _strings(body.get(values_key) or [], values_key)
    if not values:
        raise bad_request(f"'{values_key}' is required.", values_key)
    expires = opt_instant(body.get("expirationDateTime"), "expirationDateTime")
    sandbox = sandbox_of(request)
    with sandbox.lock:
        dnc = _dnc_or_404(sandbox.store, request.path_params["dncId"])
        _change(dnc, kind, action.lower(), values, expires, sandbox.store)
    return empty(204)


async def patch_phones(request: Request) -> Response:
    return await _patch(request, "phone", "phoneNumbers")


async def patch_emails(request: Request) -> Response:
    return await _patch(request, "email", "emailAddresses")


async def _post(request: Request, kind: str, status: int) -> Response:
    values = _strings(await read_json(request), "request body")
    expires = opt_instant(request.query_params.get("expirationDateTime"), "expirationDateTime")
    sandbox = sandbox_of(request)
    with sandbox.lock:
        dnc = _dnc_or_404(sandbox.store, request.path_params["dncId"])
        _change(dnc, kind, "add", values, expires, sandbox.store)
    return empty(status)


async def post_phones(request: Request) -> Response:
    return await _post(request, "phone", 200)


async def post_emails(request: Request) -> Response:
    return await _post(request, "email", 204)


BASE = "/api/v2/outbound/dnclists"
routes = [
    Route(BASE, create_dnc, methods=["POST"]),
    Route(BASE, list_dnc, methods=["GET"]),
    Route(BASE + "/{dncId}", get_dnc, methods=["GET"]),
    Route(BASE + "/{dncId}", delete_dnc, methods=["DELETE"]),
    Route(BASE + "/{dncId}/phonenumbers", patch_phones, methods=["PATCH"]),
    Route(BASE + "/{dncId}/phonenumbers", post_phones, methods=["POST"]),
    Route(BASE + "/{dncId}/emailaddresses", patch_emails, methods=["PATCH"]),
    Route(BASE + "/{dncId}/emailaddresses", post_emails, methods=["POST"]),
]
