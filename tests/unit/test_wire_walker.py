"""The request checker of ``tests/wire.py`` can fail: each defect below yields its problem.

Every case starts from a request that the official SDK itself would send (checked to give no
problem), changes one thing, and expects exactly one problem naming it.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.wire import Walker, check_requests, match_operation, sdk_models

LIST = "/api/v2/outbound/contactlists/L1"


def _req(
    method: str,
    path: str,
    body: Any = None,
    *,
    query: list[list[str]] | None = None,
    auth: str | None = "Bearer",
    form: str | None = None,
) -> dict[str, Any]:
    return {
        "method": method,
        "path": path,
        "query": query or [],
        "headers": {},
        "auth_scheme": auth,
        "content_type": "application/x-www-form-urlencoded" if form else "application/json",
        "json": body,
        "has_body": body is not None or form is not None,
        "body_text": form,
    }


def _add_contacts() -> dict[str, Any]:
    contact = {"id": "k1", "contactListId": "L1", "data": {"Phone": "+13175550001"}}
    query = [["priority", "true"], ["doNotQueue", "false"]]
    return _req("POST", f"{LIST}/contacts", [contact | {"callable": True}], query=query)


def _campaign() -> dict[str, Any]:
    body = {
        "name": "c",
        "contactList": {"id": "L1"},
        "messagesPerMinute": 10,
        "campaignStatus": "on",
        "smsConfig": {
            "phoneColumn": "Phone",
            "messageColumn": "Message",
            "senderSmsPhoneNumber": {"phoneNumber": "+13175550100"},
        },
    }
    return _req("PUT", "/api/v2/outbound/messagingcampaigns/M1", body)


def _token() -> dict[str, Any]:
    return _req("POST", "/oauth/token", auth="Basic", form="grant_type=client_credentials")


def _problems(*requests: dict[str, Any]) -> list[str]:
    return check_requests(requests).problems


def test_the_baseline_requests_are_clean() -> None:
    delete = _req("DELETE", f"{LIST}/contacts", query=[["contactIds", "a,b"]])
    assert _problems(_add_contacts(), _campaign(), _token(), delete) == []


def _changed(base: dict[str, Any], change: Any) -> dict[str, Any]:
    request = copy.deepcopy(base)
    change(request)
    return request


CASES = [
    (
        "unknown-key",
        _add_contacts,
        lambda r: r["json"][0].update(colour="red"),
        "[0].colour: WritableDialerContact has no such key",
    ),
    (
        "wrong-type",
        _add_contacts,
        lambda r: r["json"][0].update(callable="yes"),
        "[0].callable: 'yes' is not a bool",
    ),
    (
        "wrong-nested-type",
        _add_contacts,
        lambda r: r["json"][0]["data"].update(Phone=13175550001),
        "[0].data.Phone: 13175550001 is not a str",
    ),
    (
        "not-a-list",
        _add_contacts,
        lambda r: r.update(json=r["json"][0]),
        "expected a list for list[WritableDialerContact]",
    ),
    (
        "bad-enum",
        _campaign,
        lambda r: r["json"].update(campaignStatus="running"),
        "MessagingCampaign.campaignStatus: 'running' not in",
    ),
    (
        "enum-case",
        _campaign,
        lambda r: r["json"].update(campaignStatus="ON"),
        "MessagingCampaign.campaignStatus: 'ON' not in",
    ),
    (
        "missing-required",
        _add_contacts,
        lambda r: r["json"][0].pop("contactListId"),
        "[0].contactListId: required by WritableDialerContact, missing",
    ),
    (
        "missing-nested-required",
        _campaign,
        lambda r: r["json"]["smsConfig"].pop("senderSmsPhoneNumber"),
        "smsConfig.senderSmsPhoneNumber: required by SmsConfig, missing",
    ),
    (
        "null-required",
        _campaign,
        lambda r: r["json"].update(messagesPerMinute=None),
        "messagesPerMinute: required by MessagingCampaign, missing",
    ),
    (
        "wrong-path",
        _add_contacts,
        lambda r: r.update(path="/api/v2/outbound/contactlist/L1/contacts"),
        "no SDK operation has this method and path",
    ),
    (
        "wrong-method",
        _add_contacts,
        lambda r: r.update(method="PATCH"),
        "no SDK operation has this method and path",
    ),
    (
        "unknown-query",
        _add_contacts,
        lambda r: r["query"].append(["prio", "true"]),
        "query parameter 'prio' not in OutboundApi.post_outbound_contactlist_contacts",
    ),
    (
        "query-type",
        _add_contacts,
        lambda r: r["query"].__setitem__(0, ["priority", "yes"]),
        "query priority='yes' is not a bool",
    ),
    (
        "missing-required-body",
        _add_contacts,
        lambda r: r.update(json=None, has_body=False),
        "requires a list[WritableDialerContact] body",
    ),
    (
        "body-not-json",
        _add_contacts,
        lambda r: r.update(json=None, body_text="id=k1", content_type="text/plain"),
        "the body is not JSON",
    ),
    (
        "json-as-text-content-type",
        _add_contacts,
        lambda r: r.update(content_type="text/plain"),
        "JSON body sent as 'text/plain'",
    ),
    (
        "bearer-missing",
        _campaign,
        lambda r: r.update(auth_scheme=None),
        "authorization None, the SDK sends Bearer",
    ),
    (
        "token-extra-form-field",
        _token,
        lambda r: r.update(body_text="grant_type=client_credentials&client_id=x"),
        "form field 'client_id' not sent by",
    ),
    (
        "token-other-grant",
        _token,
        lambda r: r.update(body_text="grant_type=password"),
        "grant_type 'password'",
    ),
]


@pytest.mark.parametrize(
    ("base", "change", "problem"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_defect_yields_its_problem(base: Any, change: Any, problem: str) -> None:
    problems = _problems(_changed(base(), change))
    assert len(problems) == 1, problems
    assert problem in problems[0]


def test_a_missing_required_query_parameter_and_a_body_on_a_get() -> None:
    delete = _problems(_req("DELETE", f"{LIST}/contacts"))
    assert len(delete) == 1
    assert "required query parameter 'contactIds' missing" in delete[0]
    get = _problems(_req("GET", LIST, {"name": "x"}))
    assert len(get) == 1
    assert "takes no body, one was sent" in get[0]


def test_path_templates_prefer_literal_segments() -> None:
    bulk = match_operation("POST", f"{LIST}/contacts/bulk")
    one = match_operation("PUT", f"{LIST}/contacts/bulk")  # here 'bulk' is a contact id
    assert bulk is not None
    assert bulk.body_type == "list[str]"
    assert one is not None
    assert one.body_type == "DialerContact"
    assert match_operation("GET", "/api/v2/outbound/contactlists/L1/nothing") is None


def test_an_unknown_model_and_models_without_required_info_are_reported() -> None:
    walker = Walker(sdk_models(), required={})
    walker.walk({"a": 1}, "NoSuchModel", "x")
    walker.walk({"id": "L1"}, "DomainEntityRef", "y")
    assert walker.problems == ["x: the SDK has no model NoSuchModel"]
    assert walker.required_unknown == {"DomainEntityRef"}
