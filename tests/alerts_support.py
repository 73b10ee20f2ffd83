"""Shared set-up of the alert tests: a DuckDB warehouse, a served sandbox, a fake clock."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from flows.alerts_service import AlertService, create_alerts_app
from genesys_sandbox import SandboxConfig, create_app
from genesys_sandbox.testing import serve
from tasks.alerts import directory_from_frames, sign
from tasks.genesys import GenesysClient
from tasks.render import load_templates
from tasks.settings import Settings, load_settings
from tasks.warehouse import make_engine, migrate

SECRET = "test-signing-secret"
INBOUND_TOKEN = "test-inbound-token"
TWILIO_TOKEN = "test-twilio-token"
PUBLIC = "https://alerts.example.com"


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **kw: float) -> None:
        self.at += timedelta(**kw)


def sms_bucket(number: str, seed: int = 0) -> int:
    """The sandbox carrier's outcome bucket of a number, computed here independently."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{number}".encode()).digest()[:8], "big") % 100


def number_with(lo: int, hi: int, start: int = 3175551000) -> str:
    """A NANP number whose sandbox outcome bucket lies in [lo, hi)."""
    n = start
    while not lo <= sms_bucket(f"+1{n}") < hi:
        n += 1
    return f"+1{n}"


def customers(rows: list[dict[str, Any]]) -> pl.DataFrame:
    base = {
        "full_name": "Ada Lovelace",
        "first_name": "Ada",
        "phone_e164": None,
        "email": None,
        "time_zones": ["America/New_York"],
        "locale": "en_US",
        "preferred_channel": None,
    }
    return pl.DataFrame(
        [base | r for r in rows],
        schema={
            "customer_id": pl.String,
            "full_name": pl.String,
            "first_name": pl.String,
            "phone_e164": pl.String,
            "email": pl.String,
            "time_zones": pl.List(pl.String),
            "locale": pl.String,
            "preferred_channel": pl.String,
        },
    )


def consent(rows: list[tuple[str, str, str, datetime]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "customer_id": pl.String,
            "channel": pl.String,
            "status": pl.String,
            "occurred_at": pl.Datetime("us"),
        },
        orient="row",
    )


def alert_settings(**alerts: Any) -> Settings:
    return load_settings(
        alerts={
            "signing_secret": SECRET,
            "inbound_token": INBOUND_TOKEN,
            "twilio_auth_token": TWILIO_TOKEN,
            "public_base_url": PUBLIC,
            "poll_interval_seconds": 0.0001,
            "retry_after_seconds": 0,
            **alerts,
        }
    )


def event_body(event_id: str, customer_id: str = "C1", **fields: Any) -> bytes:
    body = {
        "event_id": event_id,
        "type": "payment_received",
        "customer_id": customer_id,
        "invoice_id": "I1",
        "amount": "12.50",
        "currency": "USD",
        "occurred_at": "2026-11-23T14:00:00Z",
    } | fields
    return json.dumps(body).encode()


def signed_headers(body: bytes, at: datetime, secret: str = SECRET) -> dict[str, str]:
    ts = int(at.replace(tzinfo=UTC).timestamp())
    return {
        "content-type": "application/json",
        "x-reminders-timestamp": str(ts),
        "x-reminders-signature": sign(secret, ts, body),
    }


@dataclass
class Rig:
    service: AlertService
    http: httpx.Client
    sandbox: httpx.Client
    clock: Clock
    engine: Any

    def post_event(self, body: bytes, at: datetime | None = None) -> httpx.Response:
        return self.http.post(
            "/events", content=body, headers=signed_headers(body, at or self.clock())
        )

    def ledger(self) -> list[dict[str, Any]]:
        return self.sandbox.get("/sandbox/ledger").json()["messages"]

    def run_sandbox_to(self, at: datetime) -> None:
        self.sandbox.post("/sandbox/run", json={"until": at.isoformat() + "Z"}).raise_for_status()

    def alerts(self) -> pl.DataFrame:
        from tasks.warehouse import read_frame

        with self.engine.begin() as conn:
            return read_frame(conn, "select * from alerts order by alert_key")

    def settle(self, ticks: int = 3) -> None:
        for _ in range(ticks):
            self.service.tick()


@contextmanager
def rig(
    tmp_path: Path,
    people: pl.DataFrame,
    events: pl.DataFrame,
    *,
    at: datetime,
    settings: Settings | None = None,
    sandbox_config: SandboxConfig | None = None,
) -> Iterator[Rig]:
    engine = make_engine(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    migrate(engine)
    clock = Clock(at)
    config = sandbox_config or SandboxConfig(clock_start=at)
    with serve(create_app(config)) as url, httpx.Client(base_url=url, timeout=30) as admin:
        client = GenesysClient(
            api_base=url,
            login_base=url,
            client_id="sandbox-client",
            client_secret="sandbox-secret",
            max_attempts=3,
            sleep=lambda _s: None,
        )
        directory = directory_from_frames(people, events)
        service = AlertService(
            engine, directory, load_templates(), settings or alert_settings(), client, clock=clock
        )
        app = create_alerts_app(service, run_worker=False)
        with serve(app) as alerts_url, httpx.Client(base_url=alerts_url, timeout=30) as http:
            yield Rig(service, http, admin, clock, engine)
        client.close()
    engine.dispose()
    time.sleep(0)
