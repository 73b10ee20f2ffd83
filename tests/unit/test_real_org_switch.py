"""The GENESYS_TEST_ORG switch: real-org settings from the environment, and the cleanup of
every test object under the run's prefix (httpx.MockTransport, no network)."""

from __future__ import annotations

import json

import httpx
import pytest

from tasks.genesys import client_from_settings, hosts_for
from tests.genesys_target import CLEANUP_ORDER, cleanup, target_from_env

ENV = {
    "GENESYS_TEST_ORG": "1",
    "REMINDERS_GENESYS__REGION": "eu-central-1",
    "REMINDERS_GENESYS__CLIENT_ID": "cid",
    "REMINDERS_GENESYS__CLIENT_SECRET": "csecret",
    "REMINDERS_GENESYS__SMS_SENDER": "+4915550000001",
    "REMINDERS_GENESYS__EMAIL_FROM_DOMAIN_ID": "mail.example.org",
}


def test_the_switch_selects_the_real_org_from_the_environment() -> None:
    target = target_from_env(ENV, run="abc123")
    assert target.real
    assert target.prefix == "reminders-test-abc123"
    s = target.settings
    assert (s.region, s.base_url, s.client_id) == ("eu-central-1", None, "cid")
    assert (s.sms_sender, s.email_from_domain_id) == ("+4915550000001", "mail.example.org")
    assert s.name_prefix == "reminders-test-abc123"
    assert target.secret == "csecret"
    assert target.name("cl-1") == "reminders-test-abc123-cl-1"
    assert hosts_for(s.region, s.base_url) == (
        "https://api.mypurecloud.de",
        "https://login.mypurecloud.de",
    )
    # a fresh uuid per run when none is given
    assert target_from_env(ENV).prefix != target_from_env(ENV).prefix


def test_without_the_switch_the_sandbox_is_the_target() -> None:
    for env in ({}, {k: v for k, v in ENV.items() if k != "GENESYS_TEST_ORG"}):
        target = target_from_env(env, sandbox_url="http://127.0.0.1:9")
        assert not target.real
        assert (target.settings.base_url, target.settings.region) == ("http://127.0.0.1:9", None)
        assert target.name("cl-1") == "cl-1"


@pytest.mark.parametrize("missing", sorted(k for k in ENV if k != "GENESYS_TEST_ORG"))
def test_the_switch_without_a_variable_refuses_to_start(missing: str) -> None:
    env = {k: v for k, v in ENV.items() if k != missing}
    with pytest.raises(RuntimeError, match=missing):
        target_from_env(env)


PREFIX = "reminders-test-abc123"
LISTINGS = {
    "/api/v2/outbound/messagingcampaigns": [
        {"id": "c1", "name": f"{PREFIX}-sms-1", "campaignStatus": "on", "version": 3},
        {"id": "c2", "name": f"{PREFIX}-email-upcoming", "campaignStatus": "off", "version": 1},
        {"id": "cx", "name": "reminders-sms-1", "campaignStatus": "on", "version": 1},
    ],
    "/api/v2/outbound/contactlists": [
        {"id": "l1", "name": f"{PREFIX}-sms-1"},
        {"id": "lx", "name": "reminders-email-upcoming"},
    ],
    "/api/v2/outbound/dnclists": [{"id": "d1", "name": f"{PREFIX}-opt-outs"}],
    "/api/v2/outbound/callabletimesets": [{"id": "t1", "name": f"{PREFIX}-send-window"}],
    "/api/v2/outbound/digitalrulesets": [
        {"id": "r1", "name": f"{PREFIX}-uncontactable-after-send"},
        {"id": "rx", "name": "reminders-uncontactable-after-send"},
    ],
    "/api/v2/responsemanagement/libraries": [
        {"id": "b1", "name": f"{PREFIX}-templates"},
        {"id": "bx", "name": "reminders-templates"},
    ],
}


class FakeOrg:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict | None]] = []
        self.hosts: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.hosts.add(request.url.host)
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        body = json.loads(request.content) if request.content else None
        path = request.url.path
        self.calls.append((request.method, path, body))
        if request.method == "GET" and path in LISTINGS:
            return httpx.Response(200, json={"entities": LISTINGS[path], "pageCount": 1})
        if request.method == "GET" and path == "/api/v2/responsemanagement/responses":
            assert request.url.params["libraryId"] == "b1"  # only the test library's
            return httpx.Response(200, json={"entities": [{"id": "p1", "name": f"{PREFIX}-e"}]})
        if request.method == "GET" and path.startswith("/api/v2/outbound/messagingcampaigns/"):
            cid = path.rsplit("/", 1)[1]
            found = next(
                c for c in LISTINGS["/api/v2/outbound/messagingcampaigns"] if c["id"] == cid
            )
            return httpx.Response(200, json=found)
        if request.method == "PUT":
            return httpx.Response(200, json=body)
        return httpx.Response(204)


def test_cleanup_deletes_only_the_prefixed_objects_in_dependency_order() -> None:
    org = FakeOrg()
    target = target_from_env(ENV, run="abc123")
    with client_from_settings(
        target.settings, target.secret, transport=httpx.MockTransport(org)
    ) as client:
        deleted = cleanup(client, target.prefix)
    kinds = [kind for kind, _ in deleted]
    assert kinds == sorted(kinds, key=CLEANUP_ORDER.index)
    assert set(kinds) == set(CLEANUP_ORDER)
    assert all(name.startswith(PREFIX + "-") for _, name in deleted)
    deletes = [path for method, path, _ in org.calls if method == "DELETE"]
    assert deletes == [
        "/api/v2/outbound/messagingcampaigns/c1",
        "/api/v2/outbound/messagingcampaigns/c2",
        "/api/v2/outbound/contactlists/l1",
        "/api/v2/outbound/dnclists/d1",
        "/api/v2/outbound/callabletimesets/t1",
        "/api/v2/outbound/digitalrulesets/r1",
        "/api/v2/responsemanagement/responses/p1",
        "/api/v2/responsemanagement/libraries/b1",
    ]
    # the running campaign was turned off (PUT with its version) before its delete
    puts = [(i, b) for i, (m, _p, b) in enumerate(org.calls) if m == "PUT"]
    assert [(b["campaignStatus"], b["version"]) for _, b in puts] == [("off", 3)]
    first_delete = next(i for i, (m, _p, _b) in enumerate(org.calls) if m == "DELETE")
    assert puts[0][0] < first_delete
    assert org.hosts == {"api.mypurecloud.de", "login.mypurecloud.de"}  # the region's hosts


def test_cleanup_refuses_a_prefix_that_is_not_a_test_prefix() -> None:
    with pytest.raises(ValueError, match="test prefix"):
        cleanup(None, "reminders")  # type: ignore[arg-type]
