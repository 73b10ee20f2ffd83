"""Issue 8 behaviours of the sandbox, one test per behaviour and per reading of each switch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from genesys_sandbox import SandboxConfig
from genesys_sandbox.__main__ import parse_args, parse_switches
from genesys_sandbox.carrier import sms_outcome
from tests.sandbox.org import Org

NY = "America/New_York"
OPEN = "2026-11-23T13:00:00Z"  # 08:00 in New York: the default window opens


def _contact(cid: str, phone: str, message: str | None = None, zone: str = NY) -> dict:
    text = f"Hello {cid}" if message is None else message
    return {"id": cid, "data": {"Phone": phone, "Message": text, "TimeZone": zone}}


def _contact_path(cl: dict, cid: str) -> str:
    return f"/outbound/contactlists/{cl['id']}/contacts/{cid}"


def _sent(org: Org) -> list[str]:
    return [m["contact_id"] for m in org.ledger()["messages"]]


def _campaign(org: Org, contacts: list[dict], **extra: Any) -> tuple[dict, dict]:
    cl = org.sms_list()
    if contacts:
        org.add(cl["id"], contacts)
    campaign = org.sms_campaign(cl["id"], **extra)
    assert org.turn(campaign["id"], "on").status_code == 200
    return cl, campaign


def _status(org: Org, campaign: dict) -> str:
    return org.ok("GET", f"/outbound/messagingcampaigns/{campaign['id']}")["campaignStatus"]


# 1. outside_window ---------------------------------------------------------------------


def test_outside_window_skip_skips_for_the_pass(org: Org) -> None:
    org.configure(recycle="never")
    _, campaign = _campaign(org, [_contact("early", "+13175550001")])
    summary = org.run("2026-11-23T14:00:00Z")  # reached at 06:00Z = 01:00 in New York
    assert (summary["sent"], summary["skipped"]) == (0, {"outside_contactable_time": 1})
    org.run("2026-11-23T20:00:00Z")  # the window opens at 13:00Z: still not sent
    assert _sent(org) == []
    path = f"/outbound/messagingcampaigns/{campaign['id']}"
    progress = org.ok("GET", path + "/progress")
    assert progress["numberOfContactsSkipped"] == {"outside_contactable_time": 1}
    assert org.ok("GET", path + "/diagnostics")["timeZoneRescheduledContactsCount"] == 0
    assert org.api("DELETE", path + "/progress").status_code == 204  # recycle now
    org.run("2026-11-23T20:01:00Z")
    assert _sent(org) == ["early"]


def test_outside_window_reschedule_waits_for_the_window(org: Org) -> None:
    org.configure(recycle="never", outside_window="reschedule")
    _, campaign = _campaign(org, [_contact("early", "+13175550001")])
    org.run("2026-11-23T12:00:00Z")
    path = f"/outbound/messagingcampaigns/{campaign['id']}/diagnostics"
    assert org.ok("GET", path) == {
        "timeZoneRescheduledContactsCount": 1,
        "filteredOutContactsCount": 0,
    }
    org.run("2026-11-23T14:00:00Z")
    assert [m["sent_at"] for m in org.ledger()["messages"]] == ["2026-11-23T13:00:00.000Z"]


# 2. recycle ----------------------------------------------------------------------------


def test_always_running_campaign_recycles_and_sends_again(org: Org) -> None:
    org.clock = org.http.post("/sandbox/run", json={"until": OPEN})
    _campaign(org, [_contact("a", "+13175550001"), _contact("b", "+13175550002")])
    summary = org.run("2026-11-23T13:03:00Z")
    # minute 0 sends a, b; minute 1 has nothing left -> recycle -> a, b again, and so on
    assert summary["recycles"] >= 1
    ledger = org.ledger()
    assert [m["recycle"] for m in ledger["messages"][:4]] == [0, 0, 1, 1]
    assert {(d["contact_id"], d["to"]) for d in ledger["duplicates"]} == {
        ("a", "+13175550001"),
        ("b", "+13175550002"),
    }


def test_recycle_never_sends_once(org: Org) -> None:
    org.configure(recycle="never")
    org.run(OPEN)
    _campaign(org, [_contact("a", "+13175550001")])
    assert org.run("2026-11-23T18:00:00Z")["recycles"] == 0
    assert _sent(org) == ["a"]


@pytest.mark.parametrize(("reading", "again"), [("on_exhaustion", 1), ("never", 0)])
def test_normal_campaign_completes_and_restarts(org: Org, reading: str, again: int) -> None:
    org.configure(recycle=reading)
    org.run(OPEN)
    _, campaign = _campaign(org, [_contact("a", "+13175550001")], alwaysRunning=False)
    org.run("2026-11-23T13:10:00Z")
    assert (_sent(org), _status(org, campaign)) == (["a"], "complete")
    assert org.turn(campaign["id"], "on").status_code == 200
    org.run("2026-11-23T13:20:00Z")
    assert _sent(org) == ["a"] * (1 + again)


def test_uncontactable_contacts_are_not_recycled(org: Org) -> None:
    org.run(OPEN)
    cl, _ = _campaign(org, [_contact("a", "+13175550001"), _contact("b", "+13175550002")])
    org.run("2026-11-23T13:01:00Z")
    update = {"callable": False, "contactableStatus": {"SMS": {"contactable": False}}}
    changed = org.ok("PUT", _contact_path(cl, "a"), json=update)
    assert (changed["callable"], changed["contactableStatus"]["SMS"]["contactable"]) == (
        False,
        False,
    )
    assert changed["data"]["Phone"] == "+13175550001"
    org.ok(
        "PUT", _contact_path(cl, "b"), json={"contactableStatus": {"SMS": {"contactable": False}}}
    )
    org.run("2026-11-23T14:00:00Z")
    assert sorted(_sent(org)) == ["a", "b"]
    found = org.ok("POST", f"/outbound/contactlists/{cl['id']}/contacts/bulk", json=["a", "b"])
    assert [c["contactableStatus"]["SMS"]["contactable"] for c in found] == [False, False]


def test_clear_system_data_clears_callable_status(org: Org) -> None:
    org.configure(recycle="never")
    org.run(OPEN)
    cl, _ = _campaign(org, [_contact("a", "+13175550001")])
    org.ok("PUT", _contact_path(cl, "a"), json={"callable": False})
    assert org.run("2026-11-23T13:05:00Z")["skipped"] == {"not_callable": 1}
    (fresh,) = org.add(cl["id"], [_contact("a", "+13175550001")], clearSystemData="true")
    assert fresh["callable"] is True
    org.run("2026-11-23T13:10:00Z")
    assert _sent(org) == ["a"]


# 3. doNotQueue for new contacts -------------------------------------------------------------


@pytest.mark.parametrize(("reading", "before"), [("no_effect", 1), ("wait_for_recycle", 0)])
def test_donotqueue_for_new_contacts(org: Org, reading: str, before: int) -> None:
    org.configure(recycle="never", donotqueue_new=reading)
    org.run(OPEN)
    cl, campaign = _campaign(org, [])
    org.add(cl["id"], [_contact("n", "+13175550001")], doNotQueue="true")
    org.run("2026-11-23T13:05:00Z")
    assert len(_sent(org)) == before
    org.api("DELETE", f"/outbound/messagingcampaigns/{campaign['id']}/progress")
    org.run("2026-11-23T13:10:00Z")
    assert len(_sent(org)) == before + 1


# 4. deletes while in use -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("switches", "status", "kept"),
    [
        ({"delete_in_use": "keep"}, "off", True),
        ({"delete_in_use": "keep", "in_use_scope": "running_campaign"}, "off", False),
        ({"delete_in_use": "keep", "in_use_scope": "running_campaign"}, "on", True),
        ({"delete_in_use": "delete"}, "on", False),
    ],
    ids=["any-campaign", "running-scope-off", "running-scope-on", "delete"],
)
def test_delete_of_contacts_in_use(org: Org, switches: dict, status: str, kept: bool) -> None:
    org.configure(**switches)
    cl, campaign = _campaign(org, [_contact("a", "+13175550001"), _contact("b", "+13175550002")])
    org.turn(campaign["id"], status)
    bulk = org.api(
        "DELETE", f"/outbound/contactlists/{cl['id']}/contacts", params={"contactIds": "a"}
    )
    single = org.api("DELETE", _contact_path(cl, "b"))
    assert (bulk.status_code, bulk.content, single.status_code) == (200, b"", 200)
    left = org.ok("POST", f"/outbound/contactlists/{cl['id']}/contacts/bulk", json=["a", "b"])
    assert [c["id"] for c in left] == (["a", "b"] if kept else [])


# 6. wrap-up codes -----------------------------------------------------------------------


def _key_with(outcome: str) -> str:
    return next(f"k{i}" for i in range(10000) if sms_outcome(f"k{i}", 0).name == outcome)


def _last_code(org: Org, cl: dict, cid: str) -> str | None:
    contact = org.ok("GET", _contact_path(cl, cid))
    return (contact.get("latestSmsEvaluations") or {}).get("Phone", {}).get("wrapupCodeId")


@pytest.mark.parametrize(
    ("switches", "delivered_code", "failed_code"),
    [
        ({}, "OUTBOUND-MESSAGE-SENT", "OUTBOUND-MESSAGE-SENT"),
        ({"carrier_failure_wrapup": "failed"}, "OUTBOUND-MESSAGE-SENT", "OUTBOUND-MESSAGE-FAILED"),
        (
            {"wrapup_codes": "legacy"},
            "ININ-OUTBOUND-MESSAGE-DELIVERED",
            "ININ-OUTBOUND-INVALID-PHONE-NUMBER",
        ),
    ],
    ids=["official-sent", "official-failed", "legacy"],
)
def test_wrapup_codes_of_sends(
    org: Org, switches: dict, delivered_code: str, failed_code: str
) -> None:
    org.configure(recycle="never", **switches)
    org.run(OPEN)
    good, bad = _key_with("delivered"), _key_with("invalid_number")
    cl, _ = _campaign(org, [_contact(good, "+13175550001"), _contact(bad, "+13175550002")])
    org.run("2026-11-23T13:05:00Z")
    assert (_last_code(org, cl, good), _last_code(org, cl, bad)) == (delivered_code, failed_code)
    ledger = {m["contact_id"]: m for m in org.ledger()["messages"]}
    assert ledger[bad]["outcome"] == "invalid_number"  # the carrier record keeps the failure
    assert ledger[bad]["wrapup_code"] == failed_code
    export = org.ok("POST", f"/outbound/contactlists/{cl['id']}/export")
    assert export["id"] == cl["id"]


@pytest.mark.parametrize(
    ("switches", "code", "skipped"),
    [
        ({}, "OUTBOUND-MESSAGE-BLANK", {}),
        ({"blank_message": "skip"}, None, {"no_message": 1}),
    ],
    ids=["wrapup", "skip"],
)
def test_blank_message(org: Org, switches: dict, code: str | None, skipped: dict) -> None:
    org.configure(recycle="never", **switches)
    org.run(OPEN)
    cl, _ = _campaign(org, [_contact("blank", "+13175550001", message="  ")])
    summary = org.run("2026-11-23T13:05:00Z")
    assert (summary["sent"], summary["skipped"]) == (0, skipped)
    assert _last_code(org, cl, "blank") == code
    assert len(org.ledger()["attempts"]) == (1 if code else 0)


@pytest.mark.parametrize(
    ("limit", "text", "code"),
    [
        (765, "😀" * 382 + "x", "OUTBOUND-MESSAGE-SENT"),  # 765 UTF-16 units
        (765, "😀" * 383, "OUTBOUND-MAX-MESSAGE-LENGTH-EXCEEDED"),  # 766 UTF-16 units
        (10, "x" * 10, "OUTBOUND-MESSAGE-SENT"),
        (10, "x" * 11, "OUTBOUND-MAX-MESSAGE-LENGTH-EXCEEDED"),
        (None, "😀" * 500, "OUTBOUND-MESSAGE-SENT"),
    ],
    ids=["765-utf16", "766-utf16", "10", "11", "unlimited"],
)
def test_campaign_sms_max_length(org: Org, limit: int | None, text: str, code: str) -> None:
    org.configure(recycle="never", campaign_sms_max_length=limit)
    org.run(OPEN)
    cl, _ = _campaign(org, [_contact("m", "+13175550001", message=text)])
    org.run("2026-11-23T13:05:00Z")
    assert _last_code(org, cl, "m") == code
    assert len(_sent(org)) == (1 if code == "OUTBOUND-MESSAGE-SENT" else 0)


def test_unknown_wrapup_rate_records_codes_no_client_knows(org: Org) -> None:
    org.configure(recycle="never", unknown_wrapup_rate=1.0)
    org.run(OPEN)
    cl, _ = _campaign(org, [_contact(f"u{i}", f"+1317555000{i}") for i in range(6)])
    org.run("2026-11-23T13:05:00Z")
    codes = {_last_code(org, cl, f"u{i}") for i in range(6)}
    assert codes
    assert all(c == "OUTBOUND-STUCK-CONTACT" or str(c).startswith("X-UNKNOWN-") for c in codes)
    assert len(_sent(org)) == 6


@pytest.mark.parametrize(
    ("reading", "code"), [("none", None), ("code", "ININ-OUTBOUND-ON-DO-NOT-CALL-LIST")]
)
def test_skip_wrapup(org: Org, reading: str, code: str | None) -> None:
    org.configure(recycle="never", skip_wrapup=reading)
    org.run(OPEN)
    dnc = org.ok(
        "POST",
        "/outbound/dnclists",
        json={"name": "dnc", "dncSourceType": "rds", "contactMethod": "Phone"},
    )
    path = f"/outbound/dnclists/{dnc['id']}/phonenumbers"
    org.api("PATCH", path, json={"action": "Add", "phoneNumbers": ["+13175550001"]})
    cl, _ = _campaign(org, [_contact("d", "+13175550001")], dncLists=[{"id": dnc["id"]}])
    assert org.run("2026-11-23T13:05:00Z")["skipped"] == {"dnc": 1}
    assert _last_code(org, cl, "d") == code
    assert org.ledger()["attempts"] == []


# 7. digital rule sets ------------------------------------------------------------------


def _rule_set(org: Org, condition: dict, action: dict | None = None) -> httpx.Response:
    rule = {
        "name": "after-send",
        "order": 0,
        "category": "PostContact",
        "conditions": [condition],
        "actions": [action or {"markContactUncontactableActionSettings": {"mediaTypes": ["SMS"]}}],
    }
    return org.api(
        "POST", "/outbound/digitalrulesets", json={"name": org.unique("rules"), "rules": [rule]}
    )


@pytest.mark.parametrize(
    "condition",
    [
        {"lastResultOverallConditionSettings": {"smsWrapupCodes": ["OUTBOUND-MESSAGE-SENT"]}},
        {
            "lastResultByColumnConditionSettings": {
                "smsColumnName": "Phone",
                "smsWrapupCodes": ["OUTBOUND-MESSAGE-SENT"],
            }
        },
    ],
    ids=["overall", "by-column"],
)
def test_post_contact_rule_stops_the_recycle_resend(org: Org, condition: dict) -> None:
    rules = _rule_set(org, condition)
    assert rules.status_code == 200, rules.text
    org.run(OPEN)
    cl, campaign = _campaign(
        org, [_contact("a", "+13175550001")], ruleSets=[{"id": rules.json()["id"]}]
    )
    assert (
        org.ok("GET", f"/outbound/messagingcampaigns/{campaign['id']}")["ruleSets"][0]["id"]
        == rules.json()["id"]
    )
    org.run("2026-11-23T15:00:00Z")
    assert _sent(org) == ["a"]
    contact = org.ok("GET", _contact_path(cl, "a"))
    assert contact["contactableStatus"]["SMS"]["contactable"] is False
    in_use = org.api("DELETE", f"/outbound/digitalrulesets/{rules.json()['id']}")
    assert in_use.status_code == 409


def test_rule_that_does_not_match_leaves_the_contact(org: Org) -> None:
    condition = {
        "lastResultOverallConditionSettings": {"smsWrapupCodes": ["OUTBOUND-MESSAGE-FAILED"]}
    }
    rules = _rule_set(org, condition).json()
    org.configure(recycle="never")
    org.run(OPEN)
    cl, _ = _campaign(org, [_contact("a", "+13175550001")], ruleSets=[{"id": rules["id"]}])
    org.run("2026-11-23T13:05:00Z")
    assert org.ok("GET", _contact_path(cl, "a"))["contactableStatus"]["SMS"]["contactable"]


@pytest.mark.parametrize(
    ("condition", "action"),
    [
        ({"contactColumnConditionSettings": {"columnName": "Phone"}}, None),
        (
            {"lastResultOverallConditionSettings": {"smsWrapupCodes": ["X"]}},
            {"doNotSendActionSettings": {}},
        ),
    ],
    ids=["condition", "action"],
)
def test_unmodelled_rules_are_refused(org: Org, condition: dict, action: dict | None) -> None:
    answer = _rule_set(org, condition, action)
    assert answer.status_code == 400
    assert answer.json()["code"] == "not.modelled"


def test_rule_sets_refuse_reading(org: Org) -> None:
    condition = {"lastResultOverallConditionSettings": {"smsWrapupCodes": ["X"]}}
    rules = _rule_set(org, condition).json()
    org.configure(rule_sets="refuse")
    body = {
        "name": "c",
        "contactList": {"id": org.sms_list()["id"]},
        "messagesPerMinute": 10,
        "ruleSets": [{"id": rules["id"]}],
        "smsConfig": {
            "phoneColumn": "Phone",
            "messageColumn": "Message",
            "senderSmsPhoneNumber": {"phoneNumber": "+13175550100"},
        },
    }
    answer = org.api("POST", "/outbound/messagingcampaigns", json=body)
    assert (answer.status_code, answer.json()["code"]) == (400, "not.modelled")


# 9. list limits ------------------------------------------------------------------------


def test_list_and_org_limits(org_factory: Callable[..., Org]) -> None:
    org = org_factory(
        SandboxConfig(max_contacts_per_list=3, max_contacts_per_org=5, max_lists_per_org=2)
    )
    first, second = org.sms_list(), org.sms_list()
    over = org.api(
        "POST",
        "/outbound/contactlists",
        json={"name": "third", "columnNames": ["Phone"], "phoneColumns": [{"columnName": "Phone"}]},
    )
    assert (over.status_code, over.json()["code"]) == (400, "max.contact.lists.per.org.exceeded")
    org.add(first["id"], [_contact(f"a{i}", f"+1317555000{i}") for i in range(3)])
    org.add(first["id"], [_contact("a0", "+13175550000", message="update")])  # not new
    path = f"/outbound/contactlists/{first['id']}/contacts"
    body = [{"contactListId": first["id"], **_contact("a9", "+13175550009")}]
    full = org.api("POST", path, json=body)
    assert (full.status_code, full.json()["code"]) == (400, "max.contacts.per.list.exceeded")
    org.add(second["id"], [_contact(f"b{i}", f"+1317555001{i}") for i in range(2)])
    body = [{"contactListId": second["id"], **_contact("b9", "+13175550019")}]
    org_full = org.api("POST", f"/outbound/contactlists/{second['id']}/contacts", json=body)
    assert (org_full.status_code, org_full.json()["code"]) == (400, "max.contacts.per.org.exceeded")
    assert org.ok("GET", f"/outbound/contactlists/{second['id']}")["size"] == 2


# config endpoint and CLI ----------------------------------------------------------------


def test_config_endpoint_validates_all_or_nothing(org: Org) -> None:
    before = org.http.get("/sandbox/config").json()
    assert (before["outside_window"], before["recycle"]) == ("skip", "on_exhaustion")
    bad = org.http.put("/sandbox/config", json={"recycle": "never", "outside_window": "maybe"})
    assert bad.status_code == 400
    assert org.http.get("/sandbox/config").json() == before
    assert org.http.put("/sandbox/config", json={"bogus": 1}).status_code == 400
    after = org.configure(recycle="never", campaign_sms_max_length=None)
    assert (after["recycle"], after["campaign_sms_max_length"]) == ("never", None)


def test_cli_switches() -> None:
    args = parse_args(["--switch", "recycle=never", "--switch", "campaign_sms_max_length=null"])
    assert parse_switches(args.switch) == {"recycle": "never", "campaign_sms_max_length": None}
    with pytest.raises(SystemExit):
        parse_switches(["nope=1"])
