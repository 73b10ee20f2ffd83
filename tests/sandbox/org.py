"""An in-process sandbox org for tests: an app, an HTTP client on it, and a bearer token."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette

__all__ = ["SENDER", "SMS_COLUMNS", "FakeClock", "Org"]

SENDER = "+13175550100"
SMS_COLUMNS = ["Phone", "Message", "TimeZone", "Rank"]


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Org:
    """One sandbox app, an HTTP client on it, and a bearer token."""

    app: Starlette
    http: httpx.Client
    token: str = ""
    _names: dict[str, int] = field(default_factory=dict)

    def new_token(self) -> str:
        answer = self.http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("sandbox-client", "sandbox-secret"),
        )
        assert answer.status_code == 200, answer.text
        self.token = answer.json()["access_token"]
        return self.token

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.http.request(method, f"/api/v2{path}", headers=headers, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.api(method, path, **kwargs)
        assert answer.status_code < 300, answer.text
        return answer.json() if answer.content else None

    def unique(self, prefix: str) -> str:
        self._names[prefix] = self._names.get(prefix, 0) + 1
        return f"{prefix}-{self._names[prefix]}"

    def sms_list(self, *, zone_column: bool = True) -> dict[str, Any]:
        phone = {"columnName": "Phone", "type": "cell"}
        if zone_column:
            phone["callableTimeColumn"] = "TimeZone"
        body = {"name": self.unique("sms"), "columnNames": SMS_COLUMNS, "phoneColumns": [phone]}
        return self.ok("POST", "/outbound/contactlists", json=body)

    def add(self, list_id: str, contacts: list[dict[str, Any]], **params: str) -> list[Any]:
        body = [{"contactListId": list_id, **c} for c in contacts]
        return self.ok(
            "POST", f"/outbound/contactlists/{list_id}/contacts", json=body, params=params
        )

    def sms_campaign(self, list_id: str, **extra: Any) -> dict[str, Any]:
        body = {
            "name": self.unique("campaign"),
            "contactList": {"id": list_id},
            "messagesPerMinute": 100,
            "alwaysRunning": True,
            "smsConfig": {
                "phoneColumn": "Phone",
                "messageColumn": "Message",
                "senderSmsPhoneNumber": {"phoneNumber": SENDER},
            },
            **extra,
        }
        return self.ok("POST", "/outbound/messagingcampaigns", json=body)

    def turn(self, campaign_id: str, status: str) -> httpx.Response:
        current = self.ok("GET", f"/outbound/messagingcampaigns/{campaign_id}")
        return self.api(
            "PUT",
            f"/outbound/messagingcampaigns/{campaign_id}",
            json=current | {"campaignStatus": status},
        )

    def configure(self, **switches: Any) -> dict[str, Any]:
        answer = self.http.put("/sandbox/config", json=switches)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def run(self, until: str) -> dict[str, Any]:
        answer = self.http.post("/sandbox/run", json={"until": until})
        assert answer.status_code == 200, answer.text
        return answer.json()

    def ledger(self) -> dict[str, Any]:
        return self.http.get("/sandbox/ledger").json()

    def carrier(self) -> list[dict[str, Any]]:
        return self.http.get("/sandbox/carrier/twilio/messages").json()["messages"]
