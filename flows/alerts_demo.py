"""The service part of the demo: a handful of signed events and one STOP through the alerts
service, served on a free loopback port over the demo's warehouse and sandbox.

Called by ``flows.demo`` once, mid-way through the simulated day: a payment_received for an
invoice whose reminder is still pending (the reminder is cancelled, the Genesys-fidelity way
when it was already pushed), a payment_failed for another customer (an alert by SMS or
e-mail, or held until the recipient's window opens), the same event replayed (409), a forged
one (401), and a STOP by Twilio webhook from a third customer's number (opt-out on every
channel, DNC list, confirmation reply).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import polars as pl

from flows.alerts_service import create_alerts_app, service_from_settings
from tasks.alerts import alert_counts, sign, twilio_signature
from tasks.settings import Settings
from tasks.warehouse import read_frame

__all__ = ["DEMO_ALERTS", "DEMO_ALERT_SECRETS", "run_alert_demo"]

DEMO_ALERTS = {
    "signing_secret": "demo-signing-secret",
    "inbound_token": "demo-inbound-token",
    "twilio_auth_token": "demo-twilio-token",
    "poll_interval_seconds": 0.01,
}
"""Demo-only secrets of a local fake (not credentials of anything real)."""

DEMO_ALERT_SECRETS = frozenset({"signing_secret", "inbound_token", "twilio_auth_token"})
"""The keys of DEMO_ALERTS that are secrets: passed through the environment, never parameters."""


def _event(secret: str, at: datetime, body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    ts = int(at.replace(tzinfo=UTC).timestamp())
    return raw, {
        "content-type": "application/json",
        "x-reminders-timestamp": str(ts),
        "x-reminders-signature": sign(secret, ts, raw),
    }


def run_alert_demo(settings: Settings, *, now: datetime) -> dict[str, Any]:
    """Run the service part of the demo at simulated time ``now`` (naive UTC)."""
    from genesys_sandbox.testing import serve  # a uvicorn-in-a-thread helper, no sandbox state

    service = service_from_settings(settings, now=now)
    service.clock = lambda: now
    with service.engine.begin() as conn:
        pending = read_frame(
            conn,
            "select customer_id, invoice_ids, to_address, channel, state from messages"
            " where state in ('planned', 'ready', 'pushed') order by case state when 'planned'"
            " then 0 when 'ready' then 1 else 2 end, message_key limit 40",
        )
    if pending.height < 3:
        return {"skipped": "fewer than three pending reminders"}
    sms = pending.filter(pl.col("channel") == "sms")
    paid, failed = pending.row(0, named=True), pending.row(1, named=True)
    stopper = sms.row(sms.height - 1, named=True) if sms.height else pending.row(2, named=True)
    secret = settings.alerts.signing_secret.get_secret_value()  # type: ignore[union-attr]
    answers: dict[str, int] = {}
    app = create_alerts_app(service, run_worker=False)
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        base = {"currency": "USD", "occurred_at": now.isoformat() + "Z"}
        events = {
            "payment_received": {
                "event_id": "demo-paid-1",
                "type": "payment_received",
                "customer_id": paid["customer_id"],
                "invoice_id": paid["invoice_ids"].split(",")[0],
                "amount": "42.00",
            },
            "payment_failed": {
                "event_id": "demo-failed-1",
                "type": "payment_failed",
                "customer_id": failed["customer_id"],
                "invoice_id": failed["invoice_ids"].split(",")[0],
                "amount": "19.99",
            },
        }
        for name, body in events.items():
            raw, headers = _event(secret, now, base | body)
            answers[name] = http.post("/events", content=raw, headers=headers).status_code
        raw, headers = _event(secret, now, base | events["payment_failed"])
        answers["replay"] = http.post("/events", content=raw, headers=headers).status_code
        raw, headers = _event("forged", now, base | events["payment_failed"] | {"event_id": "x"})
        answers["forged"] = http.post("/events", content=raw, headers=headers).status_code
        stop_params = {
            "MessageSid": "SMdemo0001",
            "From": stopper["to_address"] if stopper["channel"] == "sms" else "+13175550199",
            "To": settings.genesys.sms_sender,
            "Body": " Stop. ",
        }
        signature = twilio_signature(
            settings.alerts.twilio_auth_token.get_secret_value(),  # type: ignore[union-attr]
            f"{url}/inbound/twilio",
            stop_params,
        )
        stop = http.post(
            "/inbound/twilio", data=stop_params, headers={"x-twilio-signature": signature}
        )
        answers["twilio_stop"] = stop.status_code
        for _ in range(4):
            service.tick()
            time.sleep(0.05)
    counts = alert_counts(service.engine)
    with service.engine.begin() as conn:
        cancelled = conn.exec_driver_sql(
            "select count(*) from messages where state = 'cancelled'"
            " and state_reason = 'paid_since_planning'"
        ).scalar()
        opted = conn.exec_driver_sql(
            "select count(*) from consent_events where source = 'keyword:twilio'"
        ).scalar()
    if service.client is not None:
        service.client.close()
    service.engine.dispose()
    return {
        "answers": answers,
        "alerts": {k: v for k, v in counts.items() if k != "_events"},
        "events": counts.get("_events", {}),
        "reminders_cancelled_paid": int(cancelled or 0),
        "keyword_consent_events": int(opted or 0),
        "stop_reply": "unsubscribed" in stop.text,
    }
