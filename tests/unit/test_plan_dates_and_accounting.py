"""Planning a given local date (``for_date``) and the run's accounting, computed from counts."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from tasks.eligibility import PRIOR_SCHEMA
from tasks.normalize import normalize
from tasks.plan import build_plan, check_accounting
from tasks.render import load_templates
from tasks.settings import Settings
from tests import factories as f

UTC = ZoneInfo("UTC")


def _plan(customers, invoices, consent, *, as_of, for_date=None):
    extracted = f.extracted(customers, invoices, consent)
    return build_plan(
        extracted,
        normalize(extracted),
        pl.DataFrame(schema=PRIOR_SCHEMA),
        as_of=as_of,
        settings=Settings(),
        templates=load_templates(),
        new_token=lambda: "tok",
        for_date=for_date,
    )


def _customer(zone: str, phone: str, country: str, postal: str) -> tuple[dict, list[dict]]:
    c = f.customer(preferred_timezone=zone, phone=phone, country=country, postal_code=postal)
    consent = [f.consent(c["customer_id"], "sms"), f.consent(c["customer_id"], "email")]
    return c, consent


def _two_zones():
    ny, ny_consent = _customer("America/New_York", "+1 212 555 0143", "US", "10001")
    hi, hi_consent = _customer("Pacific/Honolulu", "+1 808 555 0143", "US", "96813")
    return ny, hi, ny_consent + hi_consent


def _local_window_utc(day: date, zone: str) -> tuple[datetime, datetime]:
    """[08:00, 16:00) local on ``day`` in ``zone`` as naive UTC, computed with zoneinfo."""
    tz = ZoneInfo(zone)
    start = datetime.combine(day, time(8), tzinfo=tz).astimezone(UTC).replace(tzinfo=None)
    end = datetime.combine(day, time(16), tzinfo=tz).astimezone(UTC).replace(tzinfo=None)
    return start, end


def test_for_date_plans_that_local_date_in_every_zone() -> None:
    target = date(2026, 11, 30)
    ny, hi, consent = _two_zones()
    due = (target + timedelta(days=7)).isoformat()  # the T-7 step falls on the target date
    invoices = [
        f.invoice(ny["customer_id"], due_date=due),
        f.invoice(hi["customer_id"], due_date=due),
    ]
    plan = _plan([ny, hi], invoices, consent, as_of=datetime(2026, 11, 23, 6), for_date=target)
    planned = plan.decisions.filter(pl.col("status") == "planned")
    assert sorted(planned["customer_id"]) == sorted([ny["customer_id"], hi["customer_id"]])
    assert set(planned["local_send_date"]) == {target}
    assert set(planned["cadence_step"]) == {-7}
    zones = {ny["customer_id"]: "America/New_York", hi["customer_id"]: "Pacific/Honolulu"}
    for customer_id, send_at in plan.messages.select("customer_id", "send_at_utc").iter_rows():
        start, end = _local_window_utc(target, zones[customer_id])
        assert start <= send_at < end


def test_without_for_date_the_first_open_local_date_is_planned() -> None:
    ny, hi, consent = _two_zones()
    as_of = datetime(2026, 11, 23, 6)
    # At 06:00Z it is 01:00 in New York (window today still to come) and 20:00 the day
    # before in Honolulu (window of the 22nd closed): both plan the 23rd.
    invoices = [
        f.invoice(ny["customer_id"], due_date="2026-11-30"),
        f.invoice(hi["customer_id"], due_date="2026-11-30"),
    ]
    plan = _plan([ny, hi], invoices, consent, as_of=as_of)
    planned = plan.decisions.filter(pl.col("status") == "planned")
    assert set(planned["local_send_date"]) == {date(2026, 11, 23)}


def test_for_date_whose_window_closed_in_a_zone_is_window_passed_there_only() -> None:
    target = date(2026, 11, 23)
    ny, hi, consent = _two_zones()
    due = (target + timedelta(days=1)).isoformat()
    invoices = [
        f.invoice(ny["customer_id"], due_date=due),
        f.invoice(hi["customer_id"], due_date=due),
    ]
    ny_end = _local_window_utc(target, "America/New_York")[1]
    hi_end = _local_window_utc(target, "Pacific/Honolulu")[1]
    as_of = ny_end + timedelta(minutes=5)
    assert as_of < hi_end  # the test's own premise: Honolulu's window is still open
    plan = _plan([ny, hi], invoices, consent, as_of=as_of, for_date=target)
    by_customer = {
        (c, ch): r
        for c, ch, r in plan.decisions.select("customer_id", "channel", "reason").iter_rows()
    }
    assert by_customer[(ny["customer_id"], "sms")] == "window_passed"
    assert by_customer[(ny["customer_id"], "email")] == "window_passed"
    assert by_customer[(hi["customer_id"], "sms")] == "planned"
    (send_at,) = plan.messages["send_at_utc"]
    assert as_of < send_at < hi_end


def test_a_past_local_date_plans_nothing() -> None:
    ny, hi, consent = _two_zones()
    invoices = [
        f.invoice(ny["customer_id"], due_date="2026-11-21"),
        f.invoice(hi["customer_id"], due_date="2026-11-21"),
    ]
    plan = _plan(
        [ny, hi], invoices, consent, as_of=datetime(2026, 11, 23, 6), for_date=date(2026, 11, 20)
    )
    assert set(plan.decisions["reason"]) == {"window_passed"}
    assert plan.messages.height == 0
    assert plan.accounting.ok


def test_accounting_is_ok_only_when_every_row_is_accounted_for() -> None:
    rows_in = {"customers": 10, "invoices": 4, "consent_events": 3, "contact_history": 0}
    accepted = {"customers": 9, "invoices": 3, "consent_events": 3, "contact_history": 0}
    quarantined = {"customers": 1, "invoices": 1, "consent_events": 0, "contact_history": 0}
    good = {"planned": 2, "excluded": 4, "quarantined": 2}
    assert check_accounting(rows_in, accepted, quarantined, good, 4).ok


@pytest.mark.parametrize(
    ("change", "mentions"),
    [
        ({"accepted": {"customers": 8}}, "customers"),
        ({"quarantined": {"consent_events": 1}}, "consent_events"),
        ({"decisions": {"planned": 1}}, "invoices"),
        ({"decisions": {"mystery": 1}}, "unknown status"),
        ({"decided": 3}, "decided"),
    ],
)
def test_accounting_is_false_when_a_count_does_not_add_up(change, mentions) -> None:
    rows_in = {"customers": 10, "invoices": 4, "consent_events": 3, "contact_history": 0}
    accepted = {"customers": 9, "invoices": 3, "consent_events": 3, "contact_history": 0}
    accepted |= change.get("accepted", {})
    quarantined = {"customers": 1, "invoices": 1, "consent_events": 0, "contact_history": 0}
    quarantined |= change.get("quarantined", {})
    decisions = {"planned": 2, "excluded": 4, "quarantined": 2} | change.get("decisions", {})
    result = check_accounting(rows_in, accepted, quarantined, decisions, change.get("decided", 4))
    assert not result.ok
    assert any(mentions in p for p in result.problems)


def test_a_plan_that_loses_a_row_has_accounting_not_ok() -> None:
    ny, hi, consent = _two_zones()
    invoices = [f.invoice(ny["customer_id"]), f.invoice(hi["customer_id"])]
    extracted = f.extracted([ny, hi], invoices, consent)
    normalized = normalize(extracted)
    lossy = type(normalized)(
        customers=normalized.customers.head(1),
        invoices=normalized.invoices,
        consent_events=normalized.consent_events,
        contact_history=normalized.contact_history,
        quarantine=normalized.quarantine,
    )
    plan = build_plan(
        extracted,
        lossy,
        pl.DataFrame(schema=PRIOR_SCHEMA),
        as_of=datetime(2026, 11, 23, 6),
        settings=Settings(),
        templates=load_templates(),
        new_token=lambda: "tok",
    )
    assert not plan.accounting.ok
    assert any(p.startswith("customers:") for p in plan.accounting.problems)
