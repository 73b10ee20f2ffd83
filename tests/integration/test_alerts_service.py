"""The alerts service end to end on DuckDB against the served sandbox (issue 12).

Expectations come from the inputs written here: the sandbox ledger is the ground truth of
what was sent; the fake clock fixes what "now" is for the service and the sandbox.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tasks.alerts import recover_in_flight, twilio_signature
from tests.alerts_support import (
    INBOUND_TOKEN,
    PUBLIC,
    SECRET,
    TWILIO_TOKEN,
    consent,
    customers,
    event_body,
    number_with,
    rig,
    signed_headers,
)

# 2026-11-23 is in EST (UTC-5): 15:00 UTC is 10:00 in New York, inside 08:00-21:00.
DAYTIME = datetime(2026, 11, 23, 15, 0)
NIGHT = datetime(2026, 11, 24, 4, 0)  # 23:00 New York
OPENS = datetime(2026, 11, 24, 13, 0)  # 08:00 New York the next morning
GOOD = number_with(0, 92)  # delivered by the sandbox carrier
INVALID = number_with(95, 98)  # InvalidDestination (permanent)


def _people() -> tuple:
    people = customers(
        [
            {"customer_id": "C1", "phone_e164": GOOD, "email": "c1@example.com"},
            {"customer_id": "C2", "phone_e164": INVALID, "email": "c2@example.com"},
        ]
    )
    events = consent(
        [
            ("C1", "sms", "opt_in", datetime(2026, 1, 1)),
            ("C2", "sms", "opt_in", datetime(2026, 1, 1)),
        ]
    )
    return people, events


def _sms_to(ledger: list[dict], number: str) -> list[dict]:
    return [m for m in ledger if m["channel"] == "sms" and m["to"] == number]


def test_signature_tolerance_replay_and_bad_bodies(tmp_path: Path) -> None:
    people, events = _people()
    with rig(tmp_path, people, events, at=DAYTIME) as r:
        body = event_body("evt-1")
        cases = {
            "valid": (body, signed_headers(body, DAYTIME), 202, None),
            "no headers": (
                event_body("evt-2"),
                {"content-type": "application/json"},
                401,
                "signature_missing",
            ),
            "stale by 301 s": (
                event_body("evt-3"),
                signed_headers(event_body("evt-3"), DAYTIME - timedelta(seconds=301)),
                401,
                "timestamp_outside_tolerance",
            ),
            "future by 301 s": (
                event_body("evt-4"),
                signed_headers(event_body("evt-4"), DAYTIME + timedelta(seconds=301)),
                401,
                "timestamp_outside_tolerance",
            ),
            "299 s old is fine": (
                event_body("evt-5"),
                signed_headers(event_body("evt-5"), DAYTIME - timedelta(seconds=299)),
                202,
                None,
            ),
            "wrong secret": (
                event_body("evt-6"),
                signed_headers(event_body("evt-6"), DAYTIME, secret="other"),
                401,
                "signature_invalid",
            ),
            "body changed after signing": (
                event_body("evt-7", amount="99.00"),
                signed_headers(event_body("evt-7"), DAYTIME),
                401,
                "signature_invalid",
            ),
            "replayed id, fresh signature": (
                body,
                signed_headers(body, DAYTIME + timedelta(seconds=5)),
                409,
                "event_replayed",
            ),
            "not json": (b"{oops", signed_headers(b"{oops", DAYTIME), 422, "event_invalid"),
            "amount with exponent": (
                event_body("evt-8", amount="1e3"),
                signed_headers(event_body("evt-8", amount="1e3"), DAYTIME),
                422,
                "event_invalid",
            ),
            "three decimals in USD": (
                event_body("evt-9", amount="1.005"),
                signed_headers(event_body("evt-9", amount="1.005"), DAYTIME),
                422,
                "event_invalid",
            ),
            "unknown type": (
                event_body("evt-10", type="refund"),
                signed_headers(event_body("evt-10", type="refund"), DAYTIME),
                422,
                "event_invalid",
            ),
            "oversized": (
                b"x" * 20_000,
                signed_headers(b"x" * 20_000, DAYTIME),
                413,
                "body_too_large",
            ),
        }
        for name, (content, headers, status, code) in cases.items():
            answer = r.http.post("/events", content=content, headers=headers)
            assert answer.status_code == status, name
            if code is not None:
                assert answer.json()["error"] == code, name
        with r.engine.begin() as conn:
            rows = conn.execute(sa.text("select event_id from alert_events")).all()
        stored = sorted(x[0] for x in rows)
        assert stored == ["evt-1", "evt-5"]


def test_alert_sent_once_and_delivered(tmp_path: Path) -> None:
    people, events = _people()
    with rig(tmp_path, people, events, at=DAYTIME) as r:
        assert r.post_event(event_body("evt-1")).status_code == 202
        assert r.post_event(event_body("evt-1")).status_code == 409
        r.settle()
        sent = _sms_to(r.ledger(), GOOD)
        assert len(sent) == 1
        assert "$12.50" in sent[0]["body"]
        assert "Ada" in sent[0]["body"]
        later = DAYTIME + timedelta(minutes=3)
        r.run_sandbox_to(later)
        r.clock.at = later
        r.settle()
        assert r.alerts()["state"].to_list() == ["delivered"]
        assert len(_sms_to(r.ledger(), GOOD)) == 1


def test_quiet_hours_hold_until_the_window_opens(tmp_path: Path) -> None:
    people, events = _people()
    with rig(tmp_path, people, events, at=NIGHT) as r:
        assert r.post_event(event_body("evt-night"), NIGHT).status_code == 202
        r.settle()
        alert = r.alerts().row(0, named=True)
        assert alert["state"] == "held"
        assert alert["release_at_utc"] == OPENS
        assert r.ledger() == []
        r.clock.at = OPENS - timedelta(seconds=1)
        r.run_sandbox_to(r.clock.at)
        r.settle()
        assert r.ledger() == []
        r.clock.at = OPENS
        r.run_sandbox_to(OPENS)
        r.settle()
        assert len(_sms_to(r.ledger(), GOOD)) == 1


def test_permanent_sms_failure_falls_back_to_email(tmp_path: Path) -> None:
    people, events = _people()
    with rig(tmp_path, people, events, at=DAYTIME) as r:
        assert r.post_event(event_body("evt-c2", customer_id="C2")).status_code == 202
        r.settle()
        later = DAYTIME + timedelta(minutes=2)
        r.run_sandbox_to(later)
        r.clock.at = later
        r.settle()
        ledger = r.ledger()
        assert len(_sms_to(ledger, INVALID)) == 1
        mails = [m for m in ledger if m["channel"] == "email"]
        assert [m["to"] for m in mails] == ["c2@example.com"]
        states = dict(zip(r.alerts()["alert_key"], r.alerts()["state"], strict=True))
        assert states == {"evt-c2": "failed", "evt-c2:email": "sent"}


def test_opted_out_and_unknown_customers_get_nothing(tmp_path: Path) -> None:
    people, events = _people()
    events = events.vstack(consent([("C1", "email", "opt_out", datetime(2026, 2, 1))]))
    with rig(tmp_path, people, events, at=DAYTIME) as r:
        r.post_event(event_body("evt-a"))
        r.post_event(event_body("evt-b", customer_id="C404"))
        r.settle()
        reasons = dict(zip(r.alerts()["alert_key"], r.alerts()["state_reason"], strict=True))
        assert reasons == {"evt-a": "opted_out", "evt-b": "customer_unknown"}
        assert r.ledger() == []


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it in the process runs."""


def test_exactly_once_under_kill_and_retry(tmp_path: Path) -> None:
    """In process, through the worker's retry (``send_due``); the SIGKILL variant of the
    send on accept is tests/e2e/test_alerts_kill.py."""
    people, events = _people()
    with rig(tmp_path, people, events, at=DAYTIME) as r:
        client = r.service.client
        assert client is not None
        real = client.send_agentless_sms

        def killed_after_call(*args: object) -> dict:
            real(*args)  # Genesys accepted it, the process dies before recording the answer
            raise _Killed

        # sent on accept into a 503: not processed, so ready again for the worker's retry
        r.sandbox.put("/sandbox/faults", json={"rate_5xx": 1.0}).raise_for_status()
        r.post_event(event_body("evt-kill"))
        assert r.service.flush()
        r.sandbox.put("/sandbox/faults", json={"rate_5xx": 0.0}).raise_for_status()
        assert r.alerts()["state"].to_list() == ["ready"]
        assert _sms_to(r.ledger(), GOOD) == []
        client.send_agentless_sms = killed_after_call  # type: ignore[method-assign]
        with pytest.raises(_Killed):
            r.settle(1)
        client.send_agentless_sms = real  # type: ignore[method-assign]
        assert r.alerts()["state"].to_list() == ["sending"]
        # restart: the in-flight alert is unknown, then settled by a lookup: found in Genesys,
        # so it is recorded with its message id and never sent again
        assert recover_in_flight(r.engine, now=r.clock()) == 1  # what start() does first
        assert r.alerts()["state"].to_list() == ["unknown"]
        r.settle()
        killed = r.alerts().row(0, named=True)
        assert killed["state"] == "accepted"
        sent = _sms_to(r.ledger(), GOOD)
        assert len(sent) == 1
        assert killed["genesys_message_id"] == sent[0]["message_id"]
        # a 5xx burst: 503 after the client's budget is "not processed": retried, sent once
        r.sandbox.put("/sandbox/faults", json={"rate_5xx": 1.0}).raise_for_status()
        r.post_event(event_body("evt-burst", invoice_id="I2", amount="3.00"))
        r.settle(1)
        burst = r.alerts().filter(r.alerts()["alert_key"] == "evt-burst")
        assert burst["state"].to_list() == ["ready"]
        r.sandbox.put("/sandbox/faults", json={"rate_5xx": 0.0}).raise_for_status()
        r.settle()
        bodies = [m["body"] for m in _sms_to(r.ledger(), GOOD)]
        assert sum("$3.00" in b for b in bodies) == 1
        # a dropped connection after Genesys committed: unknown, found by lookup, not resent
        r.sandbox.put("/sandbox/faults", json={"drop_after_commit_rate": 1.0}).raise_for_status()
        r.post_event(event_body("evt-drop", invoice_id="I3", amount="4.00"))
        assert r.service.flush()
        r.sandbox.put("/sandbox/faults", json={"drop_after_commit_rate": 0.0}).raise_for_status()
        drop = r.alerts().filter(r.alerts()["alert_key"] == "evt-drop")
        assert drop["state"].to_list() == ["unknown"]
        r.settle()
        drop = r.alerts().filter(r.alerts()["alert_key"] == "evt-drop")
        assert drop["state"].to_list() == ["accepted"]
        bodies = [m["body"] for m in _sms_to(r.ledger(), GOOD)]
        assert sum("$4.00" in b for b in bodies) == 1


def test_payment_cancels_pending_reminders(tmp_path: Path) -> None:
    people, events = _people()
    with rig(tmp_path, people, events, at=DAYTIME) as r:
        with r.engine.begin() as conn:
            for n, (key, state, invoices) in enumerate(
                (
                    ("m-planned", "planned", "I1"),
                    ("m-ready", "ready", "I0,I1"),
                    ("m-other", "planned", "I9"),
                )
            ):
                row = {
                    "message_key": key,
                    "customer_id": "C1",
                    "channel": "sms",
                    "local_send_date": DAYTIME.date(),
                    "time_zone": "America/New_York",
                    "candidate_zones": "America/New_York",
                    "send_at_local": DAYTIME,
                    "send_at_utc": DAYTIME,
                    "window_start_utc": DAYTIME,
                    "window_end_utc": OPENS,
                    "wave_id": "w1",
                    "slot": 0,
                    "wave_start_utc": DAYTIME,
                    "to_address": GOOD,
                    "template": "sms_due_today",
                    "body": "reminder",
                    "invoice_ids": invoices,
                    "invoice_count": len(invoices.split(",")),
                    "cadence_step": 0,
                    "amount_total_minor": 100,
                    "currency": "USD",
                    "link_token": f"tok-{key}",
                    "state": state,
                    "first_run_id": "run-1",
                    "last_run_id": "run-1",
                    "created_at_utc": DAYTIME,
                    "updated_at_utc": DAYTIME,
                }
                conn.execute(
                    sa.text(
                        f"insert into messages ({', '.join(row)})"
                        f" values ({', '.join(':' + c for c in row)})"
                    ),
                    row,
                )
                conn.execute(
                    sa.text(
                        "insert into decisions (run_id, invoice_id, invoice_row, customer_id,"
                        " channel, status, reason, message_key) values ('run-1', :i, :n, 'C1',"
                        " 'sms', 'planned', 'planned', :k)"
                    ),
                    {"i": invoices.split(",")[-1], "k": key, "n": n},
                )
        r.post_event(event_body("evt-paid"))
        r.settle()
        with r.engine.begin() as conn:
            states = dict(conn.execute(sa.text("select message_key, state from messages")).all())
            reasons = dict(conn.execute(sa.text("select message_key, reason from decisions")).all())
            cancelled = conn.execute(
                sa.text("select cancelled_reminders from alert_events")
            ).scalar()
        assert states == {"m-planned": "cancelled", "m-ready": "cancelled", "m-other": "planned"}
        assert reasons["m-planned"] == reasons["m-ready"] == "paid_since_planning"
        assert reasons["m-other"] == "planned"
        assert cancelled == 2


def _twilio(r, body: str, sid: str, sender: str, signature: str | None = None) -> httpx.Response:
    params = {"MessageSid": sid, "From": sender, "To": "+13175550100", "Body": body}
    sig = signature or twilio_signature(TWILIO_TOKEN, f"{PUBLIC}/inbound/twilio", params)
    return r.http.post(
        "/inbound/twilio",
        data=params,
        headers={"x-twilio-signature": sig},
    )


def test_inbound_stop_via_twilio_and_genesys_round_trip(tmp_path: Path) -> None:
    people, events = _people()
    with rig(tmp_path, people, events, at=DAYTIME) as r:
        assert _twilio(r, " Stop! ", "SM1", GOOD, signature="bad").status_code == 403
        answer = _twilio(r, " Stop! ", "SM1", GOOD)
        assert answer.status_code == 200
        assert "unsubscribed" in answer.text
        again = _twilio(r, " Stop! ", "SM1", GOOD)  # Twilio retries the same MessageSid
        assert again.text == answer.text
        r.settle()
        with r.engine.begin() as conn:
            rows = conn.execute(
                sa.text("select customer_id, status, keyword, source from consent_events")
            ).all()
            dnc = {x[0] for x in conn.execute(sa.text("select address from dnc_entries"))}
        assert rows == [("C1", "opt_out", "STOP", "keyword:twilio")]
        assert dnc == {GOOD, "c1@example.com"}
        r.post_event(event_body("evt-after-stop"))
        r.settle()
        assert r.alerts()["state_reason"].to_list() == ["opted_out"]
        # START through the Architect data action, a minute later: SMS allowed again (a START
        # at the very instant of the STOP would lose the tie: the consent rule prefers opt-out)
        r.clock.advance(minutes=1)
        r.run_sandbox_to(r.clock.at)
        bad = r.http.post("/inbound/genesys", json={"messageId": "g1", "fromAddress": GOOD})
        assert bad.status_code == 401
        ok = r.http.post(
            "/inbound/genesys",
            json={"messageId": "g1", "fromAddress": GOOD, "text": "start", "toAddress": "x"},
            headers={"authorization": f"Bearer {INBOUND_TOKEN}"},
        )
        assert ok.json()["action"] == "opt_in"
        assert ok.json()["keyword"] == "START"
        r.settle()
        r.post_event(event_body("evt-after-start", invoice_id="I5"))
        r.settle()
        states = dict(zip(r.alerts()["alert_key"], r.alerts()["state"], strict=True))
        assert states["evt-after-start"] == "accepted"
        help_answer = r.http.post(
            "/inbound/genesys",
            json={"messageId": "g2", "fromAddress": GOOD, "text": "help"},
            headers={"authorization": f"Bearer {INBOUND_TOKEN}"},
        ).json()
        assert help_answer["action"] == "help"
        assert "STOP" in help_answer["reply"]
        call = r.http.post(
            "/inbound/genesys",
            json={"messageId": "g3", "fromAddress": GOOD, "text": "CALL"},
            headers={"authorization": f"Bearer {INBOUND_TOKEN}"},
        ).json()
        assert call["action"] == "callback_request"
        with r.engine.begin() as conn:
            callbacks = conn.execute(sa.text("select customer_id from callback_requests")).all()
            sources = conn.execute(
                sa.text("select keyword, source from consent_events order by recorded_at_utc")
            ).all()
        assert callbacks == [("C1",)]
        assert {k for k, _ in sources} == {"STOP", "START", "HELP", "CALL"}
        assert SECRET  # the webhook secret is untouched by inbound traffic
