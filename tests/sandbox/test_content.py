"""Response-management templates as campaign content (issue 8 item 8), under each switch."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sandbox.org import SENDER, Org

OPEN = "2026-11-23T13:00:00Z"  # 08:00 in New York


def _library(org: Org) -> dict:
    return org.ok("POST", "/responsemanagement/libraries", json={"name": org.unique("lib")})


def _response(org: Org, library: dict, kind: str, texts: list[dict], **extra: Any) -> dict:
    body = {
        "name": org.unique("resp"),
        "libraries": [{"id": library["id"]}],
        "responseType": kind,
        "texts": texts,
        **extra,
    }
    return org.ok("POST", "/responsemanagement/responses", json=body)


def _mail_list(org: Org) -> dict:
    column = {"columnName": "Email", "type": "personal", "contactableTimeColumn": "TimeZone"}
    body = {
        "name": org.unique("mail"),
        "columnNames": ["Email", "TimeZone", "Name", "Subject", "Body"],
        "emailColumns": [column],
    }
    return org.ok("POST", "/outbound/contactlists", json=body)


def _mail_campaign(org: Org, cl: dict, template: dict | None) -> Any:
    config: dict[str, Any] = {
        "emailColumns": ["Email"],
        "fromAddress": {"domain": {"id": "mail.example.com"}, "localPart": "billing"},
    }
    if template is not None:
        config["contentTemplate"] = {"id": template["id"]}
    body = {
        "name": org.unique("mailc"),
        "contactList": {"id": cl["id"]},
        "messagesPerMinute": 10,
        "emailConfig": config,
    }
    return org.api("POST", "/outbound/messagingcampaigns", json=body)


def _mail_contact(org: Org, cl: dict, name: str) -> None:
    data = {
        "Email": "p@example.com",
        "TimeZone": "America/New_York",
        "Name": name,
        "Subject": "COLUMN SUBJECT",
        "Body": "COLUMN BODY",
    }
    org.add(cl["id"], [{"id": "p", "data": data}])


def test_library_and_response_crud(org: Org) -> None:
    library = _library(org)
    assert (
        org.ok("GET", f"/responsemanagement/libraries/{library['id']}")["name"] == library["name"]
    )
    texts = [{"content": "Hi {{Name}}", "contentType": "text/plain", "type": "body"}]
    response = _response(org, library, "CampaignSmsTemplate", texts)
    assert response["version"] == 1
    listed = org.ok("GET", "/responsemanagement/responses", params={"libraryId": library["id"]})
    assert [e["id"] for e in listed["entities"]] == [response["id"]]
    assert org.api("GET", "/responsemanagement/responses").status_code == 400
    path = f"/responsemanagement/responses/{response['id']}"
    changed = org.ok("PUT", path, json=response | {"texts": [{"content": "Bye"}]})
    assert (changed["version"], changed["texts"][0]["content"]) == (2, "Bye")
    assert org.api("PUT", path, json=response).status_code == 409  # stale version
    in_use = org.api("DELETE", f"/responsemanagement/libraries/{library['id']}")
    assert in_use.status_code == 409
    assert org.api("DELETE", path).status_code == 204
    assert org.api("DELETE", f"/responsemanagement/libraries/{library['id']}").status_code == 204
    bad = {"name": "x", "libraries": [{"id": library["id"]}], "texts": [{"content": "a"}]}
    assert org.api("POST", "/responsemanagement/responses", json=bad).status_code == 400


@pytest.mark.parametrize(
    ("reading", "subject", "body"),
    [
        ("substitute", "Invoice for Ada", "Dear Ada, pay by Friday."),
        ("literal", "Invoice for {{Name}}", "Dear {{ Name }}, pay by {{Due}}."),
    ],
)
def test_email_template_rendering(org: Org, reading: str, subject: str, body: str) -> None:
    org.configure(recycle="never", template_rendering=reading)
    org.run(OPEN)
    template = _response(
        org,
        _library(org),
        "CampaignEmailTemplate",
        [
            {"content": "Invoice for {{Name}}", "contentType": "text/plain", "type": "subject"},
            {
                "content": "Dear {{ Name }}, pay by {{Due}}.",
                "contentType": "text/plain",
                "type": "body",
            },
        ],
        substitutions=[{"id": "Due", "defaultValue": "Friday"}],
    )
    cl = _mail_list(org)
    _mail_contact(org, cl, "Ada")
    campaign = _mail_campaign(org, cl, template)
    assert campaign.status_code == 200, campaign.text
    org.turn(campaign.json()["id"], "on")
    org.run("2026-11-23T13:05:00Z")
    (message,) = org.ledger()["messages"]
    assert (message["subject"], message["body"]) == (subject, body)


@pytest.mark.parametrize(("reading", "status"), [("refuse", 400), ("send_empty", 200)])
def test_email_without_template(org: Org, reading: str, status: int) -> None:
    org.configure(recycle="never", email_without_template=reading)
    org.run(OPEN)
    cl = _mail_list(org)
    _mail_contact(org, cl, "Ada")
    campaign = _mail_campaign(org, cl, None)
    assert campaign.status_code == status, campaign.text
    if status == 200:
        org.turn(campaign.json()["id"], "on")
        org.run("2026-11-23T13:05:00Z")
        (message,) = org.ledger()["messages"]
        assert (message["subject"], message["body"]) == ("", "")  # columns never read


def test_sms_template_is_rendered_and_must_be_an_sms_template(org: Org) -> None:
    org.configure(recycle="never")
    org.run(OPEN)
    library = _library(org)
    sms = _response(
        org,
        library,
        "CampaignSmsTemplate",
        [{"content": "Hi {{Message}}, ref {{Ref}}"}],
        substitutions=[{"id": "Ref", "defaultValue": "n/a"}],
    )
    mail = _response(org, library, "CampaignEmailTemplate", [{"content": "x", "type": "body"}])
    cl = org.sms_list()
    org.add(
        cl["id"],
        [
            {
                "id": "s",
                "data": {"Phone": "+13175550001", "Message": "Bo", "TimeZone": "America/New_York"},
            }
        ],
    )

    def campaign(template: dict) -> Any:
        body = {
            "name": org.unique("smsc"),
            "contactList": {"id": cl["id"]},
            "messagesPerMinute": 10,
            "smsConfig": {
                "phoneColumn": "Phone",
                "contentTemplate": {"id": template["id"]},
                "senderSmsPhoneNumber": {"phoneNumber": SENDER},
            },
        }
        return org.api("POST", "/outbound/messagingcampaigns", json=body)

    assert campaign(mail).status_code == 400
    good = campaign(sms)
    assert good.status_code == 200, good.text
    org.turn(good.json()["id"], "on")
    org.run("2026-11-23T13:05:00Z")
    assert [m["body"] for m in org.ledger()["messages"]] == ["Hi Bo, ref n/a"]
    in_use = org.api("DELETE", f"/responsemanagement/responses/{sms['id']}")
    assert in_use.status_code == 409
