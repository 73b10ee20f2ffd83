"""The sandbox app: auth, limits, faults, campaign runs, DNC, export, ledger, carrier records."""

from __future__ import annotations

import csv
import io
import re
import time
from collections import Counter
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import httpx
import pytest

from genesys_sandbox import Faults, SandboxConfig
from genesys_sandbox.carrier import sms_outcome
from tests.sandbox.org import SENDER, FakeClock, Org

HONOLULU = "Pacific/Honolulu"
# The readings the sandbox had before issue 8 (reschedule, never recycle): tests of window,
# order and DNC rules use them so that each pass sends a contact at most once.
ONE_PASS = {"outside_window": "reschedule", "recycle": "never"}


def _contact(contact_id: str, phone: str, zone: str = "America/New_York", **data: str) -> dict:
    return {
        "id": contact_id,
        "data": {"Phone": phone, "Message": f"Hello {contact_id}", "TimeZone": zone, **data},
    }


def _time_set(org: Org, zones: dict[str, tuple[str, str]]) -> dict:
    body = {
        "name": org.unique("times"),
        "callableTimes": [
            {
                "timeZoneId": zone,
                "timeSlots": [{"startTime": a, "stopTime": b, "day": d} for d in range(1, 8)],
            }
            for zone, (a, b) in zones.items()
        ],
    }
    return org.ok("POST", "/outbound/callabletimesets", json=body)


def _error(answer: httpx.Response, status: int, code: str) -> dict:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["contextId"] == answer.headers["ININ-Correlation-Id"]
    assert set(body) >= {"message", "code", "status", "contextId", "details", "errors"}
    return body


def test_token_endpoint_checks_client_and_grant(org_factory: Callable[..., Org]) -> None:
    org = org_factory(token=False)
    bad = org.http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=("sandbox-client", "nope")
    )
    assert bad.status_code == 401
    assert bad.json()["error"] == "invalid_client"
    assert "description" in bad.json()
    grant = org.http.post(
        "/oauth/token", data={"grant_type": "password"}, auth=("sandbox-client", "sandbox-secret")
    )
    assert grant.status_code == 400
    good = org.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=("sandbox-client", "sandbox-secret"),
    )
    assert good.status_code == 200
    assert good.json()["token_type"] == "bearer"
    assert good.json()["expires_in"] == 86400


@pytest.mark.parametrize(
    ("authorization", "code"),
    [(None, "authentication.required"), ("Bearer not-a-token", "bad.credentials")],
    ids=["missing", "unknown"],
)
def test_api_requires_a_known_bearer_token(org: Org, authorization: str | None, code: str) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = org.http.get("/api/v2/outbound/contactlists", headers=headers)
    _error(answer, 401, code)


def test_token_expires_after_its_lifetime(
    org_factory: Callable[..., Org], fake_clock: FakeClock
) -> None:
    org = org_factory(SandboxConfig(token_ttl_seconds=600, monotonic=fake_clock))
    assert org.api("GET", "/outbound/contactlists").status_code == 200
    fake_clock.advance(600)
    _error(org.api("GET", "/outbound/contactlists"), 401, "credentials.expired")
    org.new_token()
    assert org.api("GET", "/outbound/contactlists").status_code == 200


def test_token_expires_after_n_requests(org_factory: Callable[..., Org]) -> None:
    org = org_factory(SandboxConfig(faults=Faults(expire_tokens_after_requests=3)))
    statuses = [org.api("GET", "/outbound/contactlists").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 401, 401]
    _error(org.api("GET", "/outbound/contactlists"), 401, "credentials.expired")
    org.new_token()
    assert org.api("GET", "/outbound/contactlists").status_code == 200
    assert org.http.get("/sandbox/stats").json()["expired_token_rejections"] == 3


def test_rate_limit_is_a_sliding_window_per_token(
    org_factory: Callable[..., Org], fake_clock: FakeClock
) -> None:
    org = org_factory(SandboxConfig(rate_limit_per_minute=3, monotonic=fake_clock))
    for _ in range(3):
        assert org.api("GET", "/outbound/contactlists").status_code == 200
        fake_clock.advance(10)
    limited = org.api("GET", "/outbound/contactlists")
    body = _error(limited, 429, "too.many.requests")
    assert limited.headers["Retry-After"] == "30"
    assert body["limit"]["value"] == 3
    other = org.token
    org.new_token()
    assert org.api("GET", "/outbound/contactlists").status_code == 200
    org.token = other
    fake_clock.advance(30)
    assert org.api("GET", "/outbound/contactlists").status_code == 200
    assert org.http.get("/sandbox/stats").json()["rate_limit_rejections"] == 1


@pytest.mark.parametrize(("count", "status"), [(1000, 200), (1001, 413)], ids=["1000", "1001"])
def test_at_most_1000_contacts_per_add(org: Org, count: int, status: int) -> None:
    cl = org.sms_list()
    body = [
        {"id": f"c{i}", "contactListId": cl["id"], "data": {"Phone": f"+1317555{i:04d}"}}
        for i in range(count)
    ]
    answer = org.api("POST", f"/outbound/contactlists/{cl['id']}/contacts", json=body)
    assert answer.status_code == status
    if status == 413:
        _error(answer, 413, "request.entity.too.large")
        assert org.ok("GET", f"/outbound/contactlists/{cl['id']}")["size"] == 0
    else:
        assert len(answer.json()) == 1000


@pytest.mark.parametrize(("count", "status"), [(50, 200), (51, 400)], ids=["50", "51"])
def test_at_most_50_columns_per_list(org: Org, count: int, status: int) -> None:
    columns = [f"C{i}" for i in range(count)]
    body = {"name": "wide", "columnNames": columns, "phoneColumns": [{"columnName": "C0"}]}
    answer = org.api("POST", "/outbound/contactlists", json=body)
    assert answer.status_code == status
    if status == 400:
        _error(answer, 400, "invalid.value")


def test_listing_pages_at_most_100(org: Org) -> None:
    for _ in range(3):
        org.sms_list()
    _error(org.api("GET", "/outbound/contactlists", params={"pageSize": 101}), 400, "invalid.value")
    first = org.ok("GET", "/outbound/contactlists", params={"pageSize": 2})
    assert (first["total"], first["pageCount"], len(first["entities"])) == (3, 2, 2)
    assert "nextUri" in first
    assert "previousUri" not in first
    second = org.ok("GET", "/outbound/contactlists", params={"pageSize": 2, "pageNumber": 2})
    assert len(second["entities"]) == 1
    assert "previousUri" in second
    assert "nextUri" not in second
    named = org.ok("GET", "/outbound/contactlists", params={"name": "sms-2"})
    assert [e["name"] for e in named["entities"]] == ["sms-2"]


@pytest.mark.parametrize(
    ("text", "status"),
    [("x" * 765, 202), ("x" * 766, 400), ("😀" * 382 + "x", 202), ("😀" * 383, 400)],
    ids=["765-chars", "766-chars", "765-utf16-units", "766-utf16-units"],
)
def test_agentless_text_at_most_765(org: Org, text: str, status: int) -> None:
    body = {
        "fromAddress": SENDER,
        "toAddress": "+13175551234",
        "toAddressMessengerType": "sms",
        "textBody": text,
    }
    answer = org.api("POST", "/conversations/messages/agentless", json=body)
    assert answer.status_code == status, answer.text


def test_contact_list_validation(org: Org) -> None:
    cl = org.sms_list()
    duplicate = {
        "name": cl["name"],
        "columnNames": ["Phone"],
        "phoneColumns": [{"columnName": "Phone"}],
    }
    _error(org.api("POST", "/outbound/contactlists", json=duplicate), 400, "name.already.exists")
    stray = {"name": "x", "columnNames": ["Phone"], "phoneColumns": [{"columnName": "Cell"}]}
    _error(org.api("POST", "/outbound/contactlists", json=stray), 400, "invalid.value")
    bad_data = [{"contactListId": cl["id"], "data": {"Phone": "+13175551234", "Nope": "1"}}]
    path = f"/outbound/contactlists/{cl['id']}/contacts"
    _error(org.api("POST", path, json=bad_data), 400, "invalid.value")
    renamed = cl | {"name": "renamed"}
    assert org.ok("PUT", f"/outbound/contactlists/{cl['id']}", json=renamed)["version"] == 2
    _error(
        org.api("PUT", f"/outbound/contactlists/{cl['id']}", json=renamed), 409, "version.mismatch"
    )


def test_injected_429s_carry_retry_after(org_factory: Callable[..., Org]) -> None:
    org = org_factory(SandboxConfig(faults=Faults(rate_429=0.5, retry_after_seconds=7, seed=1)))
    answers = [org.api("GET", "/outbound/contactlists") for _ in range(200)]
    limited = [a for a in answers if a.status_code == 429]
    assert 70 <= len(limited) <= 130
    assert {a.headers["Retry-After"] for a in limited} == {"7"}
    assert {a.json()["code"] for a in limited} == {"too.many.requests"}
    assert org.http.get("/sandbox/stats").json()["injected_429"] == len(limited)


def test_injected_503s_do_no_work(org_factory: Callable[..., Org]) -> None:
    org = org_factory(SandboxConfig(faults=Faults(rate_5xx=0.3, seed=2)))
    created = 0
    for i in range(60):
        body = {
            "name": f"l{i}",
            "columnNames": ["Phone"],
            "phoneColumns": [{"columnName": "Phone"}],
        }
        answer = org.api("POST", "/outbound/contactlists", json=body)
        if answer.status_code == 503:
            _error(answer, 503, "service.unavailable")
        else:
            created += 1
    assert 0 < created < 60
    org.http.put("/sandbox/faults", json={})
    assert org.ok("GET", "/outbound/contactlists", params={"pageSize": 100})["total"] == created


def test_faults_are_deterministic_per_seed(org_factory: Callable[..., Org]) -> None:
    faults = Faults(rate_429=0.2, rate_5xx=0.2, seed=42)
    runs = []
    for _ in range(2):
        org = org_factory(SandboxConfig(faults=faults))
        runs.append([org.api("GET", "/outbound/contactlists").status_code for _ in range(50)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 429, 503}


def test_faults_can_be_replaced_live(org: Org) -> None:
    put = org.http.put("/sandbox/faults", json={"rate_5xx": 1, "seed": 9})
    assert put.json()["rate_5xx"] == 1.0
    assert org.api("GET", "/outbound/contactlists").status_code == 503
    assert org.http.put("/sandbox/faults", json={"bogus": 1}).status_code == 400
    org.http.put("/sandbox/faults", json={"rate_5xx": 0})
    assert org.http.get("/sandbox/faults").json()["rate_5xx"] == 0.0
    assert org.api("GET", "/outbound/contactlists").status_code == 200


def test_latency_is_added(org_factory: Callable[..., Org]) -> None:
    org = org_factory(SandboxConfig(faults=Faults(latency_ms=60)))
    started = time.perf_counter()
    org.api("GET", "/outbound/contactlists")
    assert time.perf_counter() - started >= 0.06


def test_dropped_connection_after_commit(sandbox_server: str) -> None:
    with httpx.Client(base_url=sandbox_server, timeout=10) as http:
        token = http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("sandbox-client", "sandbox-secret"),
        ).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        cl = http.post(
            "/api/v2/outbound/contactlists",
            json={"name": "d", "columnNames": ["Phone"], "phoneColumns": [{"columnName": "Phone"}]},
        ).json()
        http.put("/sandbox/faults", json={"drop_after_commit_rate": 1.0}).raise_for_status()
        contacts = [{"id": "k1", "contactListId": cl["id"], "data": {"Phone": "+13175551234"}}]
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            http.post(f"/api/v2/outbound/contactlists/{cl['id']}/contacts", json=contacts)
        assert http.get(f"/api/v2/outbound/contactlists/{cl['id']}").status_code == 200
        http.put("/sandbox/faults", json={}).raise_for_status()
        found = http.post(
            f"/api/v2/outbound/contactlists/{cl['id']}/contacts/bulk", json=["k1", "k2"]
        )
        assert [c["id"] for c in found.json()] == ["k1"]
        assert http.get("/sandbox/stats").json()["injected_drops"] == 1


@pytest.mark.parametrize(
    ("reading", "resent"), [("recontact", 1), ("keep_attempted", 0)], ids=lambda v: str(v)
)
def test_readd_of_a_messaged_contact(org: Org, reading: str, resent: int) -> None:
    org.configure(**ONE_PASS, readd_requeued=reading)
    cl = org.sms_list()
    org.add(cl["id"], [_contact("k1", "+13175550001")])
    campaign = org.sms_campaign(cl["id"])
    assert org.turn(campaign["id"], "on").status_code == 200
    assert org.run("2026-11-23T15:00:00Z")["sent"] == 1
    kept = org.add(cl["id"], [_contact("k1", "+13175550001", Message="Kept")], doNotQueue="true")
    assert kept[0]["latestSmsEvaluations"]["Phone"]["contactAddress"] == "+13175550001"
    assert org.run("2026-11-23T15:30:00Z")["sent"] == 0
    org.add(cl["id"], [_contact("k1", "+13175550001", Message="Changed")])
    assert org.run("2026-11-23T16:00:00Z")["sent"] == resent
    org.add(cl["id"], [_contact("k1", "+13175550001")], clearSystemData="true", doNotQueue="true")
    assert org.run("2026-11-23T17:00:00Z")["sent"] == 1
    counts = org.ledger()["counts"]
    assert (counts["total"], counts["duplicates"]) == (2 + resent, 1 + resent)


def test_one_running_campaign_per_sender_number(org: Org) -> None:
    first = org.sms_campaign(org.sms_list()["id"])
    second = org.sms_campaign(org.sms_list()["id"])
    assert org.turn(first["id"], "on").status_code == 200
    _error(org.turn(second["id"], "on"), 409, "sender.sms.phone.number.in.use")
    path = f"/outbound/messagingcampaigns/{second['id']}/start"
    _error(
        org.api("POST", path, content=b"null", headers={"Content-Type": "application/json"}),
        409,
        "sender.sms.phone.number.in.use",
    )
    assert org.ok("GET", f"/outbound/messagingcampaigns/{second['id']}")["campaignStatus"] == "off"
    assert org.api("POST", f"/outbound/messagingcampaigns/{first['id']}/stop").status_code == 204
    assert org.api("POST", path).status_code == 204
    assert org.ok("GET", f"/outbound/messagingcampaigns/{second['id']}")["campaignStatus"] == "on"


def test_callable_time_set_is_read_in_each_contacts_zone(org: Org) -> None:
    org.configure(**ONE_PASS)
    cl = org.sms_list()
    org.add(
        cl["id"],
        [
            _contact("hnl", "+18085550001", HONOLULU),
            _contact("nyc", "+12125550001", "America/New_York"),
            _contact("lon", "+447700900001", "Europe/London"),
        ],
    )
    times = _time_set(
        org, {HONOLULU: ("09:00:00", "17:00:00"), "America/New_York": ("09:00:00", "17:00:00")}
    )
    campaign = org.sms_campaign(cl["id"], callableTimeSet={"id": times["id"]})
    org.turn(campaign["id"], "on")
    early = org.run("2026-11-23T14:00:00Z")
    assert [m["contact_id"] for m in org.ledger()["messages"]] == []
    assert early["skipped"] == {"outside_contactable_time": 2, "zone_not_in_callable_time_set": 1}
    org.run("2026-11-23T14:01:00Z")
    org.run("2026-11-23T20:00:00Z")
    sent = {m["contact_id"]: m["sent_at"] for m in org.ledger()["messages"]}
    assert sent == {"nyc": "2026-11-23T14:00:00.000Z", "hnl": "2026-11-23T19:00:00.000Z"}
    progress = org.ok("GET", f"/outbound/messagingcampaigns/{campaign['id']}/progress")
    assert progress["numberOfContactsMessaged"] == 2
    assert progress["totalNumberOfContacts"] == 3
    assert progress["numberOfContactsSkipped"] == {"zone_not_in_callable_time_set": 1}


def test_without_time_set_the_window_is_8_to_21_local(org: Org) -> None:
    org.configure(**ONE_PASS)
    cl = org.sms_list()
    org.add(
        cl["id"],
        [
            _contact("hnl", "+18085550001", HONOLULU),
            _contact("nyc", "+12125550001", "America/New_York"),
            _contact("lax", "+13105550001", "America/Los_Angeles"),
            _contact("none", "+13175550001", ""),
        ],
    )
    org.turn(org.sms_campaign(cl["id"])["id"], "on")
    org.run("2026-11-24T06:00:00Z")
    sent = {m["contact_id"]: m["sent_at"][11:16] for m in org.ledger()["messages"]}
    assert sent == {"hnl": "06:00", "nyc": "13:00", "lax": "16:00", "none": "19:00"}


def test_priority_contacts_go_first(org: Org) -> None:
    org.configure(**ONE_PASS)
    cl = org.sms_list()
    org.add(cl["id"], [_contact("a", "+13175550001"), _contact("b", "+13175550002")])
    org.add(cl["id"], [_contact("p", "+13175550003")], priority="true")
    org.turn(org.sms_campaign(cl["id"], messagesPerMinute=1)["id"], "on")
    org.run("2026-11-23T14:03:00Z")
    assert [m["contact_id"] for m in org.ledger()["messages"]] == ["p", "a", "b"]


def test_contact_sorts_order_within_priority(org: Org) -> None:
    org.configure(**ONE_PASS)
    cl = org.sms_list()
    org.add(
        cl["id"],
        [
            _contact(k, f"+1317555000{i}", Rank=r)
            for i, (k, r) in enumerate([("a", "2"), ("b", "10"), ("c", "1")])
        ],
    )
    sorts = [{"fieldName": "Rank", "direction": "DESC", "numeric": True}]
    org.turn(org.sms_campaign(cl["id"], messagesPerMinute=1, contactSorts=sorts)["id"], "on")
    org.run("2026-11-23T13:03:00Z")
    assert [m["contact_id"] for m in org.ledger()["messages"]] == ["b", "a", "c"]


def test_campaign_that_is_not_always_running_completes(org: Org) -> None:
    cl = org.sms_list()
    org.add(cl["id"], [_contact("k1", "+13175550001")])
    campaign = org.sms_campaign(cl["id"], alwaysRunning=False)
    org.turn(campaign["id"], "on")
    org.run("2026-11-23T13:05:00Z")
    assert (
        org.ok("GET", f"/outbound/messagingcampaigns/{campaign['id']}")["campaignStatus"]
        == "complete"
    )
    second = org.sms_campaign(org.sms_list()["id"])
    assert org.turn(second["id"], "on").status_code == 200


def test_email_campaign_sends_its_template_never_the_columns(org: Org) -> None:
    org.configure(**ONE_PASS)
    columns = ["Email", "Subject", "Message", "TimeZone", "Ref"]
    email_column = {"columnName": "Email", "type": "personal", "contactableTimeColumn": "TimeZone"}
    cl = org.ok(
        "POST",
        "/outbound/contactlists",
        json={"name": "mail", "columnNames": columns, "emailColumns": [email_column]},
    )
    org.add(
        cl["id"],
        [
            {
                "id": f"m{i}",
                "data": {
                    "Email": f"p{i}@example.com",
                    "Subject": "Invoice",
                    "Message": f"Due {i}",
                    "TimeZone": "Europe/Paris",
                    "Ref": f"R{i}" if i else "",
                },
            }
            for i in range(3)
        ],
    )
    dnc = org.ok(
        "POST",
        "/outbound/dnclists",
        json={"name": "mail-dnc", "dncSourceType": "rds", "contactMethod": "Email"},
    )
    org.api(
        "PATCH",
        f"/outbound/dnclists/{dnc['id']}/emailaddresses",
        json={"action": "Add", "emailAddresses": ["P2@Example.com"]},
    )
    library = org.ok("POST", "/responsemanagement/libraries", json={"name": "mail"})
    template = org.ok(
        "POST",
        "/responsemanagement/responses",
        json={
            "name": "invoice",
            "libraries": [{"id": library["id"]}],
            "responseType": "CampaignEmailTemplate",
            "texts": [
                {"content": "Invoice {{Ref}}", "contentType": "text/plain", "type": "subject"},
                {"content": "<p>Due {{Ref}}</p>", "contentType": "text/html", "type": "body"},
            ],
            "substitutions": [{"id": "Ref", "defaultValue": "-"}],
        },
    )
    body = {
        "name": "mail-campaign",
        "contactList": {"id": cl["id"]},
        "messagesPerMinute": 10,
        "dncLists": [{"id": dnc["id"]}],
        "emailConfig": {
            "emailColumns": ["Email"],
            "fromAddress": {"domain": {"id": "mail.example.com"}, "localPart": "billing"},
            "contentTemplate": {"id": template["id"]},
        },
    }
    campaign = org.ok("POST", "/outbound/messagingcampaigns", json=body)
    assert org.turn(campaign["id"], "on").status_code == 200
    org.run("2026-11-23T08:00:00Z")
    messages = org.ledger()["messages"]
    assert [
        (m["contact_id"], m["channel"], m["subject"], m["body"], m["from"]) for m in messages
    ] == [
        ("m0", "email", "Invoice -", "<p>Due -</p>", "billing@mail.example.com"),
        ("m1", "email", "Invoice R1", "<p>Due R1</p>", "billing@mail.example.com"),
    ]
    assert messages[0]["sent_at"] == "2026-11-23T07:00:00.000Z"
    contact = org.ok("GET", f"/outbound/contactlists/{cl['id']}/contacts/m0")
    assert contact["latestEmailEvaluations"]["Email"]["messageType"] == "Email"
    assert org.carrier() == []


def test_dnc_lists_are_respected(org: Org) -> None:
    org.configure(**ONE_PASS)
    cl = org.sms_list()
    org.add(
        cl["id"],
        [
            _contact("blocked", "+13175550001"),
            _contact("posted", "+13175550002"),
            _contact("expires", "+13175550003"),
            _contact("free", "+13175550004"),
        ],
    )
    dnc = org.ok(
        "POST",
        "/outbound/dnclists",
        json={"name": "dnc", "dncSourceType": "rds", "contactMethod": "Phone"},
    )
    path = f"/outbound/dnclists/{dnc['id']}/phonenumbers"
    assert (
        org.api(
            "PATCH", path, json={"action": "Add", "phoneNumbers": ["(317) 555-0001"]}
        ).status_code
        == 204
    )
    assert org.api("POST", path, json=["+13175550002"]).status_code == 200
    expiring = {
        "action": "Add",
        "phoneNumbers": ["+13175550003"],
        "expirationDateTime": "2026-11-23T16:00Z",
    }
    assert org.api("PATCH", path, json=expiring).status_code == 204
    assert org.ok("GET", f"/outbound/dnclists/{dnc['id']}")["size"] == 3
    campaign = org.sms_campaign(cl["id"], dncLists=[{"id": dnc["id"]}])
    org.turn(campaign["id"], "on")
    org.run("2026-11-23T20:00:00Z")
    sent = {m["contact_id"]: m["sent_at"] for m in org.ledger()["messages"]}
    assert sent == {"free": "2026-11-23T13:00:00.000Z", "expires": "2026-11-23T16:00:00.000Z"}
    progress = org.ok("GET", f"/outbound/messagingcampaigns/{campaign['id']}/progress")
    assert progress["numberOfContactsSkipped"] == {"dnc": 2}
    email_body = {"action": "Add", "emailAddresses": ["a@example.com"]}
    _error(
        org.api("PATCH", f"/outbound/dnclists/{dnc['id']}/emailaddresses", json=email_body),
        400,
        "invalid.value",
    )


def test_export_flow(org: Org) -> None:
    org.configure(**ONE_PASS)
    cl = org.sms_list()
    org.add(cl["id"], [_contact("k1", "+13175550001"), _contact("k2", "+13175550002")])
    org.turn(org.sms_campaign(cl["id"], messagesPerMinute=1)["id"], "on")
    org.run("2026-11-23T13:01:00Z")
    path = f"/outbound/contactlists/{cl['id']}/export"
    _error(org.api("GET", path), 404, "no.available.list.export.uri")
    null = org.api(
        "POST",
        path,
        content=b"null",
        headers={"Content-Type": "application/json", "purecloud-sdk": "269.0.0"},
    )
    assert null.status_code == 200
    assert null.json()["id"] == cl["id"]
    _error(org.api("GET", path, params={"download": "false"}), 404, "no.available.list.export.uri")
    ready = org.ok("GET", path, params={"download": "false"})
    assert set(ready) == {"uri", "exportTimestamp"}
    assert ready["uri"].startswith("http://sandbox.test/api/v2/downloads/")
    assert org.http.get(ready["uri"]).status_code == 401
    redirect = org.http.get(ready["uri"], headers={"Authorization": f"Bearer {org.token}"})
    assert redirect.status_code == 303
    assert redirect.content == b""
    download = org.http.get(redirect.headers["Location"])
    assert download.status_code == 200
    assert download.content.startswith(b"\xef\xbb\xbf")
    text = download.content.decode("utf-8-sig")
    assert text.splitlines()[0] == (
        '"inin-outbound-id","Phone","Message","TimeZone","Rank","ContactCallable",'
        '"ContactableBySms","ContactableByEmail","SmsLastAttempt-Phone","SmsLastResult-Phone"'
    )
    rows = {r["inin-outbound-id"]: r for r in csv.DictReader(io.StringIO(text))}
    assert rows["k1"]["SmsLastAttempt-Phone"] == "2026-11-23T13:00:00.000Z"
    assert rows["k1"]["SmsLastResult-Phone"] == "OUTBOUND-MESSAGE-SENT"
    assert rows["k2"]["SmsLastAttempt-Phone"] == ""
    assert rows["k2"]["ContactCallable"] == "1"


def _ready_download(org: Org) -> str:
    cl = org.sms_list()
    org.add(cl["id"], [_contact("k1", "+13175550001")])
    path = f"/outbound/contactlists/{cl['id']}/export"
    org.ok("POST", path)
    org.api("GET", path, params={"download": "false"})
    return org.ok("GET", path, params={"download": "false"})["uri"]


def test_download_redirects_to_a_signed_url_on_another_origin_without_the_token(org: Org) -> None:
    uri = _ready_download(org)
    redirect = org.api("GET", uri.removeprefix("http://sandbox.test/api/v2"))
    assert redirect.status_code == 303
    signed = httpx.URL(redirect.headers["Location"])
    assert signed.host != "sandbox.test"
    assert signed.path.startswith("/signed-downloads/")
    assert {"Expires", "Signature"} <= set(signed.params)
    pointer = org.ok(
        "GET", uri.removeprefix("http://sandbox.test/api/v2"), params={"issueRedirect": "false"}
    )
    assert set(pointer) == {"url"}
    assert httpx.URL(pointer["url"]).host == signed.host
    fetched = org.http.get(signed)
    assert fetched.status_code == 200
    assert fetched.headers["content-type"].startswith("text/csv")
    assert "k1" in fetched.content.decode("utf-8-sig")
    assert org.http.get("/sandbox/stats").json()["signed_downloads"] == 1


def test_signed_url_refuses_and_records_a_request_that_carries_a_token(org: Org) -> None:
    uri = _ready_download(org)
    signed = org.api("GET", uri.removeprefix("http://sandbox.test/api/v2")).headers["Location"]
    leaked = org.http.get(signed, headers={"Authorization": f"Bearer {org.token}"})
    assert leaked.status_code == 400
    assert b"InvalidArgument" in leaked.content
    stats = org.http.get("/sandbox/stats").json()
    assert (stats["signed_download_with_authorization"], stats["signed_downloads"]) == (1, 0)


def test_signed_url_is_bound_to_its_host_and_signature(org: Org) -> None:
    uri = _ready_download(org)
    signed = httpx.URL(
        org.api("GET", uri.removeprefix("http://sandbox.test/api/v2")).headers["Location"]
    )
    on_api_host = signed.copy_with(host="sandbox.test")
    assert org.http.get(on_api_host).status_code == 403
    tampered = signed.copy_merge_params({"Signature": "0" * 64})
    assert org.http.get(tampered).status_code == 403
    later = signed.copy_merge_params({"Expires": str(int(signed.params["Expires"]) + 3600)})
    assert org.http.get(later).status_code == 403
    assert org.http.get("/sandbox/stats").json()["signed_download_bad_signature"] == 3
    assert org.http.get(signed).status_code == 200


def test_signed_url_expires(org_factory: Callable[..., Org], fake_clock: FakeClock) -> None:
    org = org_factory(SandboxConfig(monotonic=fake_clock, download_url_ttl_seconds=60))
    uri = _ready_download(org)
    signed = org.api("GET", uri.removeprefix("http://sandbox.test/api/v2")).headers["Location"]
    fake_clock.advance(59)
    assert org.http.get(signed).status_code == 200
    fake_clock.advance(1)
    expired = org.http.get(signed)
    assert expired.status_code == 403
    assert b"Request has expired" in expired.content
    fresh = org.api("GET", uri.removeprefix("http://sandbox.test/api/v2")).headers["Location"]
    assert org.http.get(fresh).status_code == 200


def test_unknown_download_is_a_genesys_404(org: Org) -> None:
    _error(org.api("GET", "/downloads/no-such-download"), 404, "not.found")


def test_comma_joined_contact_delete_keeps_the_ledger(org: Org) -> None:
    org.configure(**ONE_PASS, delete_in_use="delete")
    cl = org.sms_list()
    org.add(cl["id"], [_contact(f"k{i}", f"+1317555000{i}") for i in range(3)])
    org.turn(org.sms_campaign(cl["id"])["id"], "on")
    org.run("2026-11-23T14:01:00Z")
    answer = org.api(
        "DELETE", f"/outbound/contactlists/{cl['id']}/contacts", params={"contactIds": "k0,k1"}
    )
    assert answer.status_code == 200
    found = org.ok(
        "POST", f"/outbound/contactlists/{cl['id']}/contacts/bulk", json=["k0", "k1", "k2"]
    )
    assert [c["id"] for c in found] == ["k2"]
    assert org.ledger()["counts"]["total"] == 3


def test_ledger_counts_agentless_duplicates(org: Org) -> None:
    def send(text: str) -> None:
        body = {
            "fromAddress": SENDER,
            "toAddress": "+13175551234",
            "toAddressMessengerType": "sms",
            "textBody": text,
        }
        assert org.api("POST", "/conversations/messages/agentless", json=body).status_code == 202

    send("Your payment is due")
    send("Your payment is due")
    send("Your payment was received")
    ledger = org.ledger()
    assert ledger["counts"] == {
        "total": 3,
        "distinct_contacts": 2,
        "duplicates": 1,
        "attempts": 0,
    }
    assert ledger["duplicates"] == []
    assert {m["source"] for m in ledger["messages"]} == {"agentless"}


def test_agentless_message_status_moves_with_virtual_time(org: Org) -> None:
    body = {
        "fromAddress": SENDER,
        "toAddress": "+13175551234",
        "toAddressMessengerType": "sms",
        "textBody": "Hi",
    }
    sent = org.ok("POST", "/conversations/messages/agentless", json=body)
    assert sent["textBody"] == "Hi"
    assert sent["message"]["status"] == "queued"
    path = f"/conversations/messages/{sent['conversationId']}/messages/{sent['id']}"
    statuses = [org.ok("GET", path)["status"]]
    for until in ("2026-11-23T06:01:00Z", "2026-11-23T06:02:00Z"):
        org.run(until)
        statuses.append(org.ok("GET", path)["status"])
    final = {"delivered": "delivery-success", "undelivered": "delivery-failed"}.get(
        sms_outcome("+13175551234", 0).name, "failed"
    )
    assert statuses[0] == "queued"
    assert statuses[-1] == final
    assert org.ok("GET", path)["providerMessageId"] == org.carrier()[0]["sid"]


def test_carrier_records_follow_twilio_layout(org: Org) -> None:
    texts = {"+13175551234": "Short", "+447700900123": "Short", "+13175551235": "x" * 200}
    for to, text in texts.items():
        body = {
            "fromAddress": SENDER,
            "toAddress": to,
            "toAddressMessengerType": "sms",
            "textBody": text,
        }
        org.ok("POST", "/conversations/messages/agentless", json=body)
    records = org.carrier()
    assert [r["price"] for r in records] == [None, None, None]
    org.run("2026-11-23T06:10:00Z")
    records = org.carrier()
    ledger = org.ledger()["messages"]
    assert [r["sid"] for r in records] == [m["carrier_sid"] for m in ledger]
    for record in records:
        assert re.fullmatch(r"SM[0-9a-f]{32}", record["sid"])
        assert re.fullmatch(r"AC[0-9a-f]{32}", record["account_sid"])
        assert (
            record["uri"]
            == f"/2010-04-01/Accounts/{record['account_sid']}/Messages/{record['sid']}.json"
        )
        assert record["messaging_service_sid"] is None
        assert (record["direction"], record["api_version"], record["price_unit"]) == (
            "outbound-api",
            "2010-04-01",
            "USD",
        )
        assert record["num_media"] == "0"
        assert record["date_created"].endswith(" +0000")
        assert (
            parsedate_to_datetime(record["date_created"]).isoformat() == "2026-11-23T06:00:00+00:00"
        )
        assert record["status"] in ("delivered", "undelivered", "failed")
    assert [r["num_segments"] for r in records] == ["1", "1", "2"]
    prices = [r["price"] for r in records if r["status"] != "failed"]
    expected = {"+13175551234": "-0.00790", "+447700900123": "-0.04500", "+13175551235": "-0.01580"}
    assert prices == [expected[r["to"]] for r in records if r["status"] != "failed"]


def test_outcome_mix_is_deterministic() -> None:
    outcomes = Counter(sms_outcome(f"contact-{i}", 0).name for i in range(5000))
    assert set(outcomes) == {"delivered", "undelivered", "invalid_number", "opted_out"}
    assert 0.90 <= outcomes["delivered"] / 5000 <= 0.94
    assert sms_outcome("contact-1", 0) == sms_outcome("contact-1", 0)


def test_errors_have_genesys_shape_for_unknown_routes(org: Org) -> None:
    _error(org.api("GET", "/outbound/nothing"), 404, "not.found")
    _error(org.api("GET", "/outbound/contactlists/nope"), 404, "not.found")
    plain = org.api(
        "POST", "/outbound/contactlists", content=b"a=b", headers={"Content-Type": "text/plain"}
    )
    _error(plain, 415, "unsupported.media.type")


def test_referenced_and_running_entities_cannot_be_deleted(org: Org) -> None:
    cl = org.sms_list()
    times = _time_set(org, {HONOLULU: ("09:00:00", "17:00:00")})
    campaign = org.sms_campaign(cl["id"], callableTimeSet={"id": times["id"]})
    _error(org.api("DELETE", f"/outbound/contactlists/{cl['id']}"), 409, "resource.in.use")
    _error(org.api("DELETE", f"/outbound/callabletimesets/{times['id']}"), 409, "resource.in.use")
    org.turn(campaign["id"], "on")
    path = f"/outbound/messagingcampaigns/{campaign['id']}"
    _error(org.api("DELETE", path), 409, "resource.in.use")
    org.turn(campaign["id"], "off")
    assert org.ok("DELETE", path)["id"] == campaign["id"]
    assert org.api("DELETE", f"/outbound/contactlists/{cl['id']}").status_code == 200
    assert org.api("GET", f"/outbound/contactlists/{cl['id']}").status_code == 404
