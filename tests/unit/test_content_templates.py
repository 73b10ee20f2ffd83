"""E-mail content templates (issue 8 item 6): template file -> response body, typed variables
as contact columns, routes per kind, and the client's response-management calls."""

from __future__ import annotations

import json
from datetime import date

import httpx
import polars as pl
import pytest

from genesys_sandbox.content import email_content
from tasks.genesys import GenesysClient
from tasks.push import (
    EMAIL_COLUMNS,
    EMAIL_KINDS,
    campaign_body,
    contact_rows,
    names_for,
    response_body,
    route_of,
)
from tasks.render import VARIABLES, load_templates, render_messages
from tasks.settings import GenesysSettings, RenderSettings

TEMPLATES = load_templates()
GENESYS = GenesysSettings(name_prefix="rt")


def _rendered(step: int, **values) -> dict:
    row = {
        "message_key": "k1",
        "channel": "email",
        "cadence_step": step,
        "due_date": date(2026, 11, 24),
        "invoice_count": 2,
        "first_name": "Ada",
        "full_name": "Ada Lovelace",
        "locale": "en_US",
        "currencies": ["USD"],
        "amounts_minor": [12345],
    } | values
    out = render_messages(
        pl.DataFrame([row]),
        templates=TEMPLATES,
        settings=RenderSettings(),
        new_token=lambda: "TOK",
    )
    return out.row(0, named=True)


def test_template_values_hold_every_typed_variable_as_rendered() -> None:
    row = _rendered(-2)
    values = json.loads(row["template_values"])
    assert set(values) == set(VARIABLES)
    settings = RenderSettings()
    assert values["CustomerName"] == "Ada"
    assert values["Amount"] == "$123.45"
    assert values["DueDate"] == "11/24/2026"
    assert values["PaymentLink"] == settings.payment_link_base + "TOK"
    assert values["InvoiceCount"] == "2"
    assert values["CompanyName"] == settings.company_name
    assert values["SupportPhone"] == settings.support_phone


def test_response_body_is_the_template_file_with_a_substitution_per_variable() -> None:
    library = "lib-1"
    for kind in EMAIL_KINDS:
        body = response_body(kind, TEMPLATES, GENESYS, library)
        template = TEMPLATES.templates[f"email_{kind}"]
        text = (template.subject, template.body)
        assert body["name"] == f"rt-email-{kind}"
        assert body["responseType"] == "CampaignEmailTemplate"
        assert body["libraries"] == [{"id": library}]
        by_type = {t["type"]: t for t in body["texts"]}
        assert (by_type["subject"]["content"], by_type["body"]["content"]) == text
        assert {t["contentType"] for t in body["texts"]} == {"text/plain"}
        assert {s["id"] for s in body["substitutions"]} == set(VARIABLES)


def test_the_file_itself_is_what_the_response_holds() -> None:
    # the subject line and body come from the file as written, not from a copy in the code
    from importlib import resources

    text = resources.files("templates").joinpath("email_overdue.txt").read_text("utf-8")
    first, _, rest = text.strip("\n").partition("\n")
    body = response_body("overdue", TEMPLATES, GENESYS, "l")
    by_type = {t["type"]: t["content"] for t in body["texts"]}
    assert by_type["subject"] == first.removeprefix("Subject:").strip()
    assert by_type["body"] == rest.strip("\n")


@pytest.mark.parametrize(("step", "kind"), [(-3, "upcoming"), (0, "due_today"), (4, "overdue")])
def test_genesys_rendering_of_the_response_equals_the_local_render(step: int, kind: str) -> None:
    row = _rendered(step)
    frame = pl.DataFrame(
        [
            row
            | {
                "to_address": "ada@example.com",
                "time_zone": "America/New_York",
                "wave_id": "w",
                "local_send_date": date(2026, 11, 24),
            }
        ]
    )
    (contact,) = contact_rows(frame, "email")
    response = response_body(kind, TEMPLATES, GENESYS, "l")
    # the sandbox's renderer stands in for Genesys: {{Name}} -> the contact's column
    shown = email_content(response, contact["data"], "substitute")
    assert (shown.subject, shown.body) == (row["subject"], row["body"])


def test_email_contacts_carry_variables_and_no_rendered_text() -> None:
    frame = pl.DataFrame(
        {
            "message_key": ["k1", "k2"],
            "to_address": ["a@example.com", "b@example.com"],
            "subject": ["S", "S"],
            "body": ["B", "B"],
            "template_values": [json.dumps({"CustomerName": "Ada", "Amount": "$1.00"}), None],
            "time_zone": ["America/New_York", "Europe/Paris|Europe/Rome"],
            "wave_id": ["w1", "w2"],
            "local_send_date": [date(2026, 11, 23), date(2026, 11, 24)],
        }
    )
    first, second = contact_rows(frame, "email-upcoming")
    assert set(first["data"]) == set(EMAIL_COLUMNS)
    assert not {"Subject", "Message", "Body"} & set(first["data"])
    assert (first["data"]["CustomerName"], first["data"]["Amount"]) == ("Ada", "$1.00")
    assert first["data"]["DueDate"] == ""  # missing values become empty cells
    assert all(v == "" for k, v in second["data"].items() if k in VARIABLES)
    assert second["data"]["TimeZone"] == "Europe/Paris"


def test_routes_and_names_per_email_kind() -> None:
    frame = pl.DataFrame(
        {
            "channel": ["sms", "email", "email", "email"],
            "template": ["sms_overdue", "email_upcoming", "email_due_today", "email_overdue"],
        }
    )
    routes = frame.select(route_of())["route"].to_list()
    assert routes == ["sms", "email-upcoming", "email-due_today", "email-overdue"]
    names = names_for("email-due_today", GENESYS)
    assert names["campaign"] == names["contact_list"] == names["response"] == "rt-email-due_today"
    assert names["library"] == "rt-templates"
    assert "response" not in names_for("sms", GENESYS)


def test_email_campaign_references_its_content_template_and_sms_keeps_the_column() -> None:
    mail = campaign_body(
        "email-overdue",
        GENESYS,
        name="c",
        contact_list_id="l",
        time_set_id="t",
        content_template_id="resp-9",
    )
    assert mail["emailConfig"]["contentTemplate"] == {"id": "resp-9"}
    assert "smsConfig" not in mail
    sms = campaign_body("sms", GENESYS, name="c", contact_list_id="l", time_set_id="t")
    assert sms["smsConfig"]["messageColumn"] == "Message"
    assert "contentTemplate" not in sms["smsConfig"]


def test_an_email_variable_too_long_for_a_cell_is_blocked() -> None:
    row = _rendered(-1, first_name="A" * 600)
    assert row["render_status"] == "too_long_for_genesys"
    assert _rendered(-1)["render_status"] == "ok"


# --- client: libraries and responses over a mock transport ---


class Org:
    """A response-management stand-in that records every request."""

    def __init__(self) -> None:
        self.libraries: dict[str, dict] = {}
        self.responses: dict[str, dict] = {}
        self.calls: list[tuple[str, str, dict | None]] = []
        self.drop_next_post = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        body = json.loads(request.content) if request.content else None
        path = request.url.path.removeprefix("/api/v2/responsemanagement")
        self.calls.append((request.method, path, body))
        if request.method == "POST":
            store = self.libraries if path == "/libraries" else self.responses
            entity = body | {"id": f"id{len(self.calls)}", "version": 1}
            store[entity["id"]] = entity
            if self.drop_next_post:
                self.drop_next_post = False
                raise httpx.RemoteProtocolError("dropped after commit")
            return httpx.Response(200, json=entity)
        if request.method == "GET" and path == "/libraries":
            return httpx.Response(200, json={"entities": list(self.libraries.values())})
        if request.method == "GET" and path == "/responses":
            lib = request.url.params["libraryId"]
            found = [r for r in self.responses.values() if lib in [x["id"] for x in r["libraries"]]]
            return httpx.Response(200, json={"entities": found, "pageCount": 1})
        if request.method == "GET" and path.startswith("/responses/"):
            return httpx.Response(200, json=self.responses[path.split("/")[-1]])
        if request.method == "PUT":
            current = self.responses[path.split("/")[-1]]
            if body["version"] != current["version"]:
                return httpx.Response(409, json={"code": "version.mismatch"})
            current.update(body | {"version": current["version"] + 1})
            return httpx.Response(200, json=current)
        return httpx.Response(204)


def _client(org: Org) -> GenesysClient:
    return GenesysClient(
        api_base="https://api.example.test",
        login_base="https://login.example.test",
        client_id="id",
        client_secret="secret",
        transport=httpx.MockTransport(org),
        sleep=lambda _s: None,
    )


def _posts(org: Org) -> list[str]:
    return [p for m, p, _ in org.calls if m == "POST"]


def test_library_and_response_are_created_once_then_reused() -> None:
    org = Org()
    with _client(org) as client:
        library = client.ensure_library("rt-templates")
        body = response_body("upcoming", TEMPLATES, GENESYS, library["id"])
        first = client.ensure_response(body)
        again = client.ensure_response(body)
        assert client.ensure_library("rt-templates")["id"] == library["id"]
    assert _posts(org) == ["/libraries", "/responses"]
    assert again["id"] == first["id"]
    assert not [c for c in org.calls if c[0] == "PUT"]
    sent = next(b for m, p, b in org.calls if m == "POST" and p == "/responses")
    assert sent["libraries"] == [{"id": library["id"]}]
    assert sent["responseType"] == "CampaignEmailTemplate"


def test_a_changed_template_file_updates_the_response_with_its_version() -> None:
    org = Org()
    with _client(org) as client:
        library = client.ensure_library("rt-templates")
        body = response_body("overdue", TEMPLATES, GENESYS, library["id"])
        first = client.ensure_response(body)
        changed = body | {"texts": [{"content": "New {{Amount}}", "type": "body"}]}
        updated = client.ensure_response(changed)
    (put,) = [(p, b) for m, p, b in org.calls if m == "PUT"]
    assert put[0] == f"/responses/{first['id']}"
    assert put[1]["version"] == 1
    assert put[1]["texts"] == changed["texts"]
    assert updated["version"] == 2
    assert _posts(org) == ["/libraries", "/responses"]


def test_a_create_whose_outcome_is_unknown_is_settled_by_name() -> None:
    org = Org()
    with _client(org) as client:
        org.drop_next_post = True
        library = client.ensure_library("rt-templates")
        org.drop_next_post = True
        response = client.ensure_response(
            response_body("due_today", TEMPLATES, GENESYS, library["id"])
        )
    assert _posts(org) == ["/libraries", "/responses"]  # never posted twice
    assert len(org.libraries) == len(org.responses) == 1
    assert response["id"] in org.responses
