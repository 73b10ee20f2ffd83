"""The sandbox's fast paths answer exactly what the general ones do."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from starlette.responses import JSONResponse

from genesys_sandbox.routes.common import ok
from genesys_sandbox.store import Contact, ContactList
from genesys_sandbox.views import contact_view


@pytest.mark.parametrize(
    "data",
    [
        {"a": [1, 2.5, None, True], "b": {"c": 'quote " back \\ tab \t é 日本 🙂 \x00'}},
        [{"id": "x", "n": -(2**63)}, [], {}],
        {1: "int keys: orjson refuses, the standard encoder takes them"},
        {"big": 2**70},
    ],
)
def test_ok_answers_the_same_json_as_the_standard_encoder(data) -> None:
    fast, plain = ok(data, 201), JSONResponse(data, status_code=201)
    assert fast.status_code == 201
    assert fast.headers["content-type"] == plain.headers["content-type"]
    assert json.loads(fast.body) == json.loads(plain.body)


def test_ok_still_refuses_what_the_standard_encoder_refuses() -> None:
    with pytest.raises(TypeError):
        ok({"at": datetime(2026, 1, 1)})


def _list() -> ContactList:
    at = datetime(2026, 11, 23, 6)
    return ContactList(
        "L",
        "list",
        ["Phone", "Phone2", "Email", "TimeZone"],
        [{"columnName": "Phone", "type": "cell"}, {"columnName": "Phone2", "type": "home"}],
        [{"columnName": "Email", "type": "work"}],
        {},
        at,
        at,
    )


def _slow_status(contact: Contact, media: str, columns: list[str]) -> dict:
    column_status = {c: {"contactable": contact.contactable(media, c)} for c in columns}
    return {
        "contactable": any(v["contactable"] for v in column_status.values()),
        "columnStatus": column_status,
    }


@pytest.mark.parametrize(
    "stored",
    [
        {},
        {"SMS": {"contactable": False}},
        {"SMS": {"columnStatus": {"Phone": {"contactable": False}}}, "Email": {}},
        {"Voice": {"columnStatus": {"Phone": {"contactable": False}, "Phone2": {}}}},
    ],
)
def test_contact_view_status_is_the_general_rule(stored) -> None:
    cl = _list()
    contact = Contact("c1", {"Phone": "+13175550123"}, datetime(2026, 11, 23, 6), (1, 1, 0))
    contact.contactable_status = stored
    view = contact_view(cl, contact)
    assert view["contactableStatus"] == {
        "Voice": _slow_status(contact, "Voice", ["Phone", "Phone2"]),
        "SMS": _slow_status(contact, "SMS", ["Phone", "Phone2"]),
        "Email": _slow_status(contact, "Email", ["Email"]),
    }
