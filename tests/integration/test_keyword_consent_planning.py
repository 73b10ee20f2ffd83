"""Keyword opt-outs reach planning and the push's re-check (issue 12, item 4).

A STOP through the Twilio endpoint lands in the warehouse ``consent_events``; the build's
consent (source files + captured events, ``with_captured_consent``) then excludes the
customer ``opted_out`` and the re-check cancels a message planned before; a START a minute
later makes SMS eligible again. Expected reasons come from the consent rules, not from a run.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from tasks.alerts import twilio_signature
from tasks.consent import load_captured_consent
from tasks.eligibility import PRIOR_SCHEMA
from tasks.normalize import normalize, with_captured_consent
from tasks.plan import build_plan
from tasks.push import recheck
from tasks.render import load_templates
from tasks.settings import Settings
from tests import factories as f
from tests.alerts_support import PUBLIC, TWILIO_TOKEN, consent, customers, rig

STOP_AT = datetime(2026, 11, 23, 15, 0)  # 10:00 in New York
TARGET = date(2026, 11, 24)
NUMBER = "+12125550143"  # the factory customer's "+1 212 555 0143"


def _build(extracted, engine, as_of: datetime):
    with engine.begin() as conn:
        captured = load_captured_consent(conn)
    normalized = with_captured_consent(normalize(extracted, as_of=as_of), captured, as_of=as_of)
    plan = build_plan(
        extracted,
        normalized,
        pl.DataFrame(schema=PRIOR_SCHEMA),
        as_of=as_of,
        settings=Settings(),
        templates=load_templates(),
        new_token=lambda: "tok",
        for_date=TARGET,
    )
    return normalized, plan


def _sms(plan, customer_id: str) -> dict:
    rows = plan.decisions.filter(
        (pl.col("customer_id") == customer_id) & (pl.col("channel") == "sms")
    )
    assert rows.height == 1
    return rows.row(0, named=True)


def _twilio(r, body: str, sid: str) -> int:
    params = {"MessageSid": sid, "From": NUMBER, "To": "+13175550100", "Body": body}
    sig = twilio_signature(TWILIO_TOKEN, f"{PUBLIC}/inbound/twilio", params)
    answer = r.http.post("/inbound/twilio", data=params, headers={"x-twilio-signature": sig})
    return answer.status_code


def test_stop_then_start_through_twilio_reach_the_build_and_the_recheck(tmp_path: Path) -> None:
    person = f.customer(phone="+1 212 555 0143")
    cid = person["customer_id"]
    due = (TARGET + timedelta(days=7)).isoformat()  # the T-7 step falls on the target date
    extracted = f.extracted(
        [person], [f.invoice(cid, due_date=due)], [f.consent(cid, "sms"), f.consent(cid, "email")]
    )
    people = customers([{"customer_id": cid, "phone_e164": NUMBER}])
    with rig(tmp_path, people, consent([]), at=STOP_AT) as r:
        _, before = _build(extracted, r.engine, STOP_AT - timedelta(hours=1))
        assert _sms(before, cid)["status"] == "planned"

        assert _twilio(r, "stop", "SM-stop") == 200
        fresh, after_stop = _build(extracted, r.engine, STOP_AT + timedelta(minutes=1))
        decision = _sms(after_stop, cid)
        assert (decision["status"], decision["reason"]) == ("excluded", "opted_out")
        assert fresh.captured_consent is not None
        assert fresh.captured_consent["source"].to_list() == ["keyword:twilio"]
        # the push's re-check of the message planned before the STOP cancels it
        planned = before.messages.filter(pl.col("customer_id") == cid)
        stale = recheck(planned, fresh, Settings().cadence, now=STOP_AT + timedelta(minutes=1))
        assert "opted_out_since_planning" in stale["detail"].to_list()
        # the source files alone (what the build read before) still allow it: the STOP is
        # what changed the decision
        _, sources_only = _build_without_captured(extracted, STOP_AT + timedelta(minutes=1))
        assert _sms(sources_only, cid)["status"] == "planned"

        r.clock.advance(minutes=1)
        assert _twilio(r, "START", "SM-start") == 200
        _, after_start = _build(extracted, r.engine, STOP_AT + timedelta(minutes=2))
        assert _sms(after_start, cid)["status"] == "planned"


def _build_without_captured(extracted, as_of: datetime):
    normalized = normalize(extracted, as_of=as_of)
    return normalized, build_plan(
        extracted,
        normalized,
        pl.DataFrame(schema=PRIOR_SCHEMA),
        as_of=as_of,
        settings=Settings(),
        templates=load_templates(),
        new_token=lambda: "tok",
        for_date=TARGET,
    )
