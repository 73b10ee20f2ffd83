"""``/api/v2/outbound/digitalrulesets``: digital rule sets (the subset in ``rulesets``).

Contract: names are unique (400 ``name.already.exists``); PUT needs the current ``version``
(409 ``version.mismatch``); a rule set referenced by a campaign cannot be deleted (409
``resource.in.use``); DELETE answers 204.  Unmodelled rules are 400 ``not.modelled``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from genesys_sandbox.errors import ApiError, invalid_value, name_exists, not_found
from genesys_sandbox.routes.common import (
    check_version,
    empty,
    name_filter,
    ok,
    page,
    read_json,
    ref_id,
    req_object,
    req_str,
    sandbox_of,
)
from genesys_sandbox.rulesets import parse_rules
from genesys_sandbox.store import DigitalRuleSet, Store, new_id
from genesys_sandbox.views import digital_rule_set_view

__all__ = ["routes"]


def _parse(body: dict[str, Any], store: Store, current: DigitalRuleSet | None) -> dict[str, Any]:
    name = req_str(body, "name")
    if store.name_taken(store.rule_sets, name, except_id=current.id if current else None):
        raise name_exists("digital rule set", name)
    list_id = ref_id(body, "contactList")
    if list_id is not None and list_id not in store.contact_lists:
        raise invalid_value(f"Contact list {list_id} does not exist.", "contactList")
    return {"name": name, "contact_list_id": list_id, "rules": parse_rules(body.get("rules"))}


def _or_404(store: Store, rule_set_id: str) -> DigitalRuleSet:
    rule_set = store.rule_sets.get(rule_set_id)
    if rule_set is None:
        raise not_found("digital rule set", rule_set_id)
    return rule_set


async def create_rule_set(request: Request) -> Response:
    body = req_object(await read_json(request))
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        fields = _parse(body, store, None)
        for rule in fields["rules"]:
            rule.setdefault("id", new_id())
        rule_set = DigitalRuleSet(
            id=new_id(), date_created=store.now, date_modified=store.now, **fields
        )
        store.rule_sets[rule_set.id] = rule_set
        return ok(digital_rule_set_view(rule_set, store))


async def list_rule_sets(request: Request) -> Response:
    sandbox = sandbox_of(request)
    matches = name_filter(request)
    with sandbox.lock:
        store = sandbox.store
        items = [r for r in store.rule_sets.values() if matches(r.name)]
        return ok(page(request, items, lambda r: digital_rule_set_view(r, store)))


async def get_rule_set(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        rule_set = _or_404(sandbox.store, request.path_params["ruleSetId"])
        return ok(digital_rule_set_view(rule_set, sandbox.store))


async def put_rule_set(request: Request) -> Response:
    body = req_object(await read_json(request))
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        rule_set = _or_404(store, request.path_params["ruleSetId"])
        check_version(body, rule_set.version, "digital rule set")
        fields = _parse(body, store, rule_set)
        for rule in fields["rules"]:
            rule.setdefault("id", new_id())
        rule_set.name = fields["name"]
        rule_set.contact_list_id = fields["contact_list_id"]
        rule_set.rules = fields["rules"]
        rule_set.version += 1
        rule_set.date_modified = store.now
        return ok(digital_rule_set_view(rule_set, store))


async def delete_rule_set(request: Request) -> Response:
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        rule_set = _or_404(store, request.path_params["ruleSetId"])
        users = [c.name for c in store.campaigns.values() if rule_set.id in c.rule_set_ids]
        if users:
            raise ApiError(
                409,
                "resource.in.use",
                f"The digital rule set is used by campaign(s): {', '.join(users)}.",
            )
        del store.rule_sets[rule_set.id]
    return empty(204)


BASE = "/api/v2/outbound/digitalrulesets"
routes = [
    Route(BASE, create_rule_set, methods=["POST"]),
    Route(BASE, list_rule_sets, methods=["GET"]),
    Route(BASE + "/{ruleSetId}", get_rule_set, methods=["GET"]),
    Route(BASE + "/{ruleSetId}", put_rule_set, methods=["PUT"]),
    Route(BASE + "/{ruleSetId}", delete_rule_set, methods=["DELETE"]),
]
