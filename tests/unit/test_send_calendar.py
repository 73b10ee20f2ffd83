"""No-send days: holidays by country / state from the holidays package, the user's CSV,
quiet weekdays; planning moves past them and a step that falls on one says why."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl
import pytest

from tasks.eligibility import PRIOR_SCHEMA
from tasks.normalize import normalize
from tasks.plan import build_plan
from tasks.render import load_templates
from tasks.send_calendar import build_calendar, postal_subdivision, read_calendar_csv
from tasks.settings import Settings, WindowSettings
from tasks.stagger import plan_allowed_send_date, plan_send_date
from tests import factories as f


def _fourth_thursday_of_november(year: int) -> date:
    first = date(year, 11, 1)
    return first + timedelta(days=(3 - first.weekday()) % 7 + 21)


THANKSGIVING = _fourth_thursday_of_november(2026)


def _ny(**values):
    c = f.customer(postal_code="10001", preferred_timezone="America/New_York", **values)
    return c, [f.consent(c["customer_id"], "sms")]


def _plan(pairs, due_dates, *, as_of, for_date=None, settings=None, no_send_days=None):
    customers = [c for c, _ in pairs]
    consent = [e for _, events in pairs for e in events]
    invoices = [
        f.invoice(c["customer_id"], due_date=d, currency=c.get("_currency", "USD"))
        for c, d in zip(customers, due_dates, strict=True)
    ]
    extracted = f.extracted(customers, invoices, consent)
    plan = build_plan(
        extracted,
        normalize(extracted, as_of=as_of),
        pl.DataFrame(schema=PRIOR_SCHEMA),
        as_of=as_of,
        settings=settings or Settings(),
        templates=load_templates(),
        new_token=lambda: "tok",
        for_date=for_date,
        no_send_days=no_send_days,
    )
    assert plan.accounting.ok
    by_customer = {}
    for c in customers:
        rows = plan.decisions.filter(pl.col("customer_id") == c["customer_id"])
        by_customer[c["customer_id"]] = rows.sort("channel").to_dicts()
    return plan, by_customer


def test_subdivision_from_postal_code() -> None:
    assert postal_subdivision("US", "10001") == "NY"
    assert postal_subdivision("US", "2108") == "MA"  # lost leading zero: 02108 Boston
    assert postal_subdivision("US", "00901") == "PR"
    assert postal_subdivision("CA", "M5V 2T6") == "ON"
    assert postal_subdivision("CA", "h2x1y4") == "QC"
    assert postal_subdivision("CA", "X0A 0H0") is None  # NT or NU: ambiguous
    assert postal_subdivision("GB", "SW1A 1AA") is None
    assert postal_subdivision("US", "not a zip") is None


def test_package_holidays_are_seeded_per_country_and_state() -> None:
    customers = pl.DataFrame(
        {"country": ["US", "US", "ZZ"], "postal_code": ["10001", "94103", "1"]}
    )
    calendar = build_calendar(customers, years=[2026], span=(date(2026, 11, 1), date(2026, 12, 1)))
    thanksgiving = calendar.filter(pl.col("day") == THANKSGIVING)
    assert set(thanksgiving["subdivision"].to_list()) == {None, "NY", "CA"}
    assert thanksgiving["name"].str.contains("Thanksgiving").all()
    assert calendar.filter(pl.col("country") == "ZZ").is_empty()  # unknown country: none


def test_plan_allowed_send_date_skips_no_send_days() -> None:
    as_of = datetime(2026, 11, 26, 6, 0)  # 01:00 in New York on Thanksgiving
    window = WindowSettings()
    assert plan_send_date(["America/New_York"], as_of, window)[0] == THANKSGIVING
    day, start, _end, skipped = plan_allowed_send_date(
        ["America/New_York"], as_of, window, {THANKSGIVING}
    )
    assert (day, skipped) == (THANKSGIVING + timedelta(days=1), [THANKSGIVING])
    assert start == datetime(2026, 11, 27, 13, 0)  # 08:00 EST


def test_planning_moves_past_a_holiday_and_a_step_on_it_says_holiday() -> None:
    as_of = datetime(2026, 11, 26, 6, 0)
    on_holiday, moved = _ny(), _ny()
    day_after = THANKSGIVING + timedelta(days=1)
    _, rows = _plan(
        [on_holiday, moved],
        [str(THANKSGIVING + timedelta(days=1)), str(day_after + timedelta(days=1))],
        as_of=as_of,
    )
    excluded = rows[on_holiday[0]["customer_id"]]
    assert {r["reason"] for r in excluded} == {"holiday"}
    detail = excluded[0]["detail"]
    assert str(THANKSGIVING) in detail
    assert "Thanksgiving" in detail
    assert "US-NY" in detail
    assert "T-1" in detail
    planned = [r for r in rows[moved[0]["customer_id"]] if r["status"] == "planned"]
    assert len(planned) == 1
    assert planned[0]["local_send_date"] == day_after
    assert planned[0]["send_at_utc"].date() == day_after


def test_without_the_calendar_the_holiday_is_an_ordinary_day() -> None:
    as_of = datetime(2026, 11, 26, 6, 0)
    customer = _ny()
    settings = Settings(calendar={"enabled": False})
    _, rows = _plan(
        [customer], [str(THANKSGIVING + timedelta(days=1))], as_of=as_of, settings=settings
    )
    planned = [r for r in rows[customer[0]["customer_id"]] if r["status"] == "planned"]
    assert [r["local_send_date"] for r in planned] == [THANKSGIVING]


def test_for_date_on_a_holiday_excludes_the_step_due_that_day() -> None:
    customer, no_step = _ny(), _ny()
    _, rows = _plan(
        [customer, no_step],
        [str(THANKSGIVING + timedelta(days=1)), str(THANKSGIVING + timedelta(days=2))],
        as_of=datetime(2026, 11, 25, 6, 0),
        for_date=THANKSGIVING,
    )
    decisions = rows[customer[0]["customer_id"]]
    assert {r["reason"] for r in decisions} == {"holiday"}
    assert "Thanksgiving" in decisions[0]["detail"]
    assert "not moved" not in decisions[0]["detail"]
    # no cadence step falls on the holiday: the honest reason is still no_step_due
    assert {r["reason"] for r in rows[no_step[0]["customer_id"]]} == {"no_step_due"}


def test_the_users_csv_adds_national_and_state_days(tmp_path) -> None:
    path = tmp_path / "closed.csv"
    path.write_text(
        "country,subdivision,day,name\n"
        "us,,2026-11-24,Company closure\n"
        "US,CA,2026-11-25,Office move\n",
        encoding="utf-8",
    )
    extra = read_calendar_csv(path)
    ny = _ny()
    ca = (
        f.customer(postal_code="94103", preferred_timezone="America/Los_Angeles"),
        [],
    )
    ca[1].append(f.consent(ca[0]["customer_id"], "sms"))
    as_of = datetime(2026, 11, 23, 6, 0)
    _, rows = _plan(
        [ny], ["2026-11-25"], as_of=as_of, for_date=date(2026, 11, 24), no_send_days=extra
    )
    assert {r["reason"] for r in rows[ny[0]["customer_id"]]} == {"holiday"}
    assert "Company closure" in rows[ny[0]["customer_id"]][0]["detail"]
    ny2 = _ny()
    _, rows = _plan(
        [ny2, ca],
        ["2026-11-26", "2026-11-26"],
        as_of=as_of,
        for_date=date(2026, 11, 25),
        no_send_days=extra,
    )
    assert {r["reason"] for r in rows[ca[0]["customer_id"]]} == {"holiday"}
    assert "Office move" in rows[ca[0]["customer_id"]][0]["detail"]
    assert "planned" in {r["status"] for r in rows[ny2[0]["customer_id"]]}


def test_a_bad_csv_row_is_named(tmp_path) -> None:
    path = tmp_path / "closed.csv"
    path.write_text("country,day,name\nUS,2026-11-24,ok\nUS,24/11/2026,bad\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 3"):
        read_calendar_csv(path)


def test_quiet_weekdays_are_per_country() -> None:
    sunday = date(2026, 11, 29)
    assert sunday.weekday() == 6
    settings = Settings(calendar={"quiet_weekdays": {"US": ["Sunday"]}})
    us = _ny()
    gb = (
        f.customer(
            country="GB",
            postal_code="SW1A 1AA",
            preferred_timezone="Europe/London",
            phone="+44 7700 900123",
        ),
        [],
    )
    gb[0]["_currency"] = "GBP"
    _, rows = _plan(
        [us, gb],
        ["2026-11-30", "2026-11-30"],
        as_of=datetime(2026, 11, 28, 6, 0),
        for_date=sunday,
        settings=settings,
    )
    assert {r["reason"] for r in rows[us[0]["customer_id"]]} == {"quiet_weekday"}
    assert "Sunday" in rows[us[0]["customer_id"]][0]["detail"]
    assert "planned" in {r["status"] for r in rows[gb[0]["customer_id"]]}


def test_planning_moves_past_a_quiet_weekday() -> None:
    settings = Settings(calendar={"quiet_weekdays": {"*": ["sun"]}})
    customer = _ny()
    _, rows = _plan(
        [customer], ["2026-12-01"], as_of=datetime(2026, 11, 29, 6, 0), settings=settings
    )
    planned = [r for r in rows[customer[0]["customer_id"]] if r["status"] == "planned"]
    assert [r["local_send_date"] for r in planned] == [date(2026, 11, 30)]


def test_quiet_weekday_names_are_checked() -> None:
    with pytest.raises(ValueError, match="not weekdays"):
        Settings(calendar={"quiet_weekdays": {"US": ["funday"]}})
