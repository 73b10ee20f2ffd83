"""Property tests over normalize -> plan: any text in any field never crashes a run, and every
input row is accounted for (rows in = accepted + quarantined; invoices x channels = planned +
excluded + quarantined decisions)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

import polars as pl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tasks.eligibility import PRIOR_SCHEMA
from tasks.extract import INPUTS
from tasks.normalize import normalize
from tasks.plan import build_plan
from tasks.render import load_templates
from tasks.settings import CANONICAL_COLUMNS, REQUIRED_COLUMNS, Settings
from tests import factories as f

AS_OF = datetime(2026, 11, 23, 6, 0)
SETTINGS = Settings()
TEMPLATES = load_templates()

# Plausible values beside arbitrary text, so that some rows get past the row rules and the
# later stages (zones, consent, eligibility, render, stagger, calendar) see hostile values too.
PLAUSIBLE = {
    "phone": ["+1 212 555 0143", "+44 7700 900123", "020 7946 0000", "+977 980-1234567"],
    "email": ["a@example.com", "x@y", "A.B@Example.COM"],
    "country": ["US", "CA", "GB", "NP", "AU", "DE", "us", "XX"],
    "postal_code": ["10001", "M5V 2T6", "2898", "94103", "00901"],
    "preferred_timezone": ["America/New_York", "EST", "Asia/Kathmandu", "UTC"],
    "locale": ["en_US", "fr-CA", "xx"],
    "preferred_channel": ["sms", "email", "fax"],
    "updated_at": ["2026-11-01T00:00:00Z", "2026-11-01", "yesterday"],
    "amount_due": ["120.00", "-5", "1e3", "0", "99999999"],
    "currency": ["USD", "GBP", "JPY", "usd"],
    "due_date": ["2026-11-24", "2026-11-30", "2026-11-16", "2026-3-1"],
    "status": ["open", "paid", "partially_paid", "void", "OPEN"],
    "paid_at": ["2026-11-22T00:00:00Z", "2026-12-01T00:00:00Z", "soon"],
    "channel": ["sms", "email", "all", "whatsapp", "TEXT"],
    "occurred_at": ["2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z", "never"],
    "attempted_at": ["2026-11-22T12:00:00Z", "2026-11-23T05:00:00Z", "?"],
    "source": ["web"],
    "outcome": ["delivered"],
}
TEXT = st.text(max_size=30)


def _value(column: str, ids: list[str]) -> st.SearchStrategy[str | None]:
    options: list[st.SearchStrategy] = [st.none(), TEXT]
    if column in PLAUSIBLE:
        options.append(st.sampled_from(PLAUSIBLE[column]))
    if column in ("customer_id", "invoice_id") and ids:
        options.append(st.sampled_from(ids))
    if column == "status":
        options.append(st.sampled_from(["opt_in", "opt_out", "stop"]))
    return st.one_of(*options)


@st.composite
def _inputs(draw):
    ids = draw(st.lists(st.sampled_from(["C1", "C2", "C3", " C1 ", ""]), max_size=3))
    rows = {}
    for name in INPUTS:
        n = draw(st.integers(min_value=0 if name != "customers" else 1, max_value=4))
        rows[name] = [
            {c: draw(_value(c, ids or ["C1"])) for c in CANONICAL_COLUMNS[name]} for _ in range(n)
        ]
    return rows


def _build(extracted, normalized, as_of):
    """build_plan with no prior outbox and the suite's settings and templates."""
    return build_plan(
        extracted,
        normalized,
        pl.DataFrame(schema=PRIOR_SCHEMA),
        as_of=as_of,
        settings=SETTINGS,
        templates=TEMPLATES,
        new_token=lambda: "tok",
    )


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(_inputs())
def test_any_text_in_any_field_plans_and_accounts_for_every_row(rows) -> None:
    extracted = f.extracted(
        rows["customers"], rows["invoices"], rows["consent_events"], rows["contact_history"]
    )
    normalized = normalize(extracted, as_of=AS_OF)
    plan = _build(extracted, normalized, AS_OF)
    assert plan.accounting.ok, plan.accounting.problems
    for name in INPUTS:
        accepted = getattr(normalized, name).height
        assert len(rows[name]) == accepted + normalized.quarantined_rows(name), name
    statuses = plan.decisions["status"].value_counts()
    by_status = dict(statuses.iter_rows())
    assert set(by_status) <= {"planned", "excluded", "quarantined"}
    assert sum(by_status.values()) == 2 * len(rows["invoices"])
    assert plan.decisions.select("invoice_row", "channel").n_unique() == 2 * len(rows["invoices"])
    planned_keys = plan.decisions.filter(pl.col("status") == "planned")["message_key"].n_unique()
    assert plan.messages.height == planned_keys
    event("planned" if by_status.get("planned") else "nothing planned")
    event("quarantined" if by_status.get("quarantined") else "no invoice quarantined")


def _plan(customers, invoices, consent):
    extracted = f.extracted(customers, invoices, consent)
    normalized = normalize(extracted, as_of=AS_OF)
    return _build(extracted, normalized, AS_OF)


NULLABLE = [
    (name, column)
    for name in ("invoices", "consent_events")
    for column in REQUIRED_COLUMNS[name]
    if column != "customer_id"  # a row of nobody: quarantined, the customer's other rows stand
]


@pytest.mark.parametrize(("name", "column"), NULLABLE, ids=[f"{n}.{c}" for n, c in NULLABLE])
def test_an_empty_required_cell_never_plans_and_never_crashes(name, column) -> None:
    """An empty CSV cell (or SQL NULL) is null in the frame, not ''. Random text rarely lands a
    null on a row that would otherwise be planned; this puts one in each required invoice and
    consent column of such a row. Without the fact the row cannot be trusted: nothing planned."""
    customer = f.customer(customer_id="C1", phone="+1 212 555 0143")
    invoice = f.invoice("C1")
    consent = [f.consent("C1", "sms"), f.consent("C1", "email")]
    baseline = _plan([customer], [invoice], consent)
    assert baseline.counts["decisions_planned"] == 1
    if name == "invoices":
        invoice = invoice | {column: None}
    else:
        consent = [consent[0] | {column: None}, consent[1]]
    plan = _plan([customer], [invoice], consent)
    assert plan.accounting.ok, plan.accounting.problems
    assert plan.counts["decisions_planned"] == 0
    assert plan.messages.height == 0


ZONES = sorted(
    z
    for z in available_timezones()
    if "/" in z and not z.startswith(("Etc/", "SystemV/", "US/", "posix/", "right/"))
)
DST_DAYS = [date(2026, 3, 8), date(2026, 11, 1), date(2026, 3, 29), date(2026, 10, 25)]
DST_DAYS += [date(2026, 4, 5), date(2026, 10, 4), date(2026, 9, 6), date(2026, 4, 4)]


@st.composite
def _recipient_and_run(draw):
    """A recipient (a zone they named, or a country with several zones) and a run time near
    the edges of a local window: seconds before or after 08:00 or 16:00 in some zone, on a
    DST day, any second of the minute."""
    if draw(st.booleans()):
        customer = {"preferred_timezone": draw(st.sampled_from(ZONES)), "country": "US"}
    else:
        country = draw(st.sampled_from(["US", "CA", "AU", "BR", "MX", "CL", "NZ", "PT", "KI"]))
        customer = {"preferred_timezone": None, "country": country, "postal_code": None}
    anchor_zone = customer["preferred_timezone"] or draw(st.sampled_from(ZONES))
    day = draw(st.one_of(st.sampled_from(DST_DAYS), st.dates(date(2026, 1, 1), date(2026, 12, 31))))
    edge = draw(st.sampled_from([time(8, 0), time(16, 0), time(12, 0)]))
    local = datetime.combine(day, edge, tzinfo=ZoneInfo(anchor_zone))
    seconds = draw(st.one_of(st.integers(-120, 60), st.integers(-7200, 7200)))  # edges often
    shift = timedelta(seconds=seconds, microseconds=draw(st.integers(0, 999_999)))
    as_of = (local.astimezone(UTC) + shift).replace(tzinfo=None)
    return customer, as_of


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_recipient_and_run())
def test_every_planned_send_is_inside_the_window_in_every_zone_of_the_recipient(case) -> None:
    """The oracle is zoneinfo's wall time of each planned send, in every candidate zone and in
    the zone the customer named (links such as Asia/Calcutta keep their clock), never the
    product's own window arithmetic."""
    values, as_of = case
    customer = f.customer(customer_id="C1", phone=None, **values)
    invoices = [
        f.invoice("C1", due_date=str(as_of.date() + timedelta(days=k))) for k in (-1, 0, 1, 2, 3)
    ]
    extracted = f.extracted([customer], invoices, [f.consent("C1", "email")])
    normalized = normalize(extracted, as_of=as_of)
    plan = _build(extracted, normalized, as_of)
    assert plan.accounting.ok, plan.accounting.problems
    named = values["preferred_timezone"]
    for zones, source, day, send in (
        plan.messages.join(
            normalized.customers.select("customer_id", "zone_source"), on="customer_id"
        )
        .select("candidate_zones", "zone_source", "local_send_date", "send_at_utc")
        .iter_rows()
    ):
        assert send > as_of
        check = zones.split("|") + ([named] if source == "preferred" else [])
        for zone in check:
            wall = send.replace(tzinfo=UTC).astimezone(ZoneInfo(zone))
            assert time(8, 0) <= wall.time() < time(16, 0), (zone, wall, as_of)
            assert wall.date() == day, (zone, wall, day)
    event("planned" if plan.messages.height else "nothing planned")
