from datetime import date, datetime

import polars as pl
import pytest

from tasks.eligibility import PRIOR_SCHEMA, REASONS, message_key
from tasks.normalize import normalize
from tasks.plan import build_plan
from tasks.render import load_templates
from tasks.settings import Settings
from tests import factories as f

AS_OF = datetime(2026, 11, 23, 6, 0)
TODAY = "2026-11-23"


def _plan(customers, invoices, consent=(), history=(), prior=None, settings=None):
    extracted = f.extracted(customers, invoices, list(consent), list(history))
    return build_plan(
        extracted,
        normalize(extracted, as_of=AS_OF),
        prior if prior is not None else pl.DataFrame(schema=PRIOR_SCHEMA),
        as_of=AS_OF,
        settings=settings or Settings(),
        templates=load_templates(),
        new_token=lambda: "tok",
    )


def _reasons(plan, invoice_id):
    rows = plan.decisions.filter(pl.col("invoice_id") == invoice_id)
    return dict(rows.select("channel", "reason").iter_rows())


def _opted_in(c):
    return [f.consent(c["customer_id"], "sms"), f.consent(c["customer_id"], "email")]


SCENARIOS = [
    (
        "due-in-7-days-sms-first",
        {},
        {"due_date": "2026-11-30"},
        {"sms": "planned", "email": "one_per_day"},
    ),
    ("due-tomorrow", {}, {"due_date": "2026-11-24"}, {"sms": "planned", "email": "one_per_day"}),
    ("three-days-late", {}, {"due_date": "2026-11-20"}, {"sms": "planned", "email": "one_per_day"}),
    (
        "due-in-5-days-no-step",
        {},
        {"due_date": "2026-11-28"},
        {"sms": "no_step_due", "email": "no_step_due"},
    ),
    (
        "paid",
        {},
        {"status": "paid", "amount_due": "0.00"},
        {"sms": "invoice_paid", "email": "invoice_paid"},
    ),
    ("void", {}, {"status": "void"}, {"sms": "invoice_void", "email": "invoice_void"}),
    (
        "disputed",
        {},
        {"status": "disputed"},
        {"sms": "invoice_disputed", "email": "invoice_disputed"},
    ),
    (
        "partially-paid-still-owes",
        {},
        {"status": "partially_paid"},
        {"sms": "planned", "email": "one_per_day"},
    ),
    (
        "open-but-zero-balance",
        {},
        {"amount_due": "0.00"},
        {"sms": "no_balance", "email": "no_balance"},
    ),
    (
        "prefers-email",
        {"preferred_channel": "email"},
        {},
        {"sms": "one_per_day", "email": "planned"},
    ),
    (
        "bad-phone-falls-back-to-email",
        {"phone": "555-01"},
        {},
        {"sms": "invalid_phone", "email": "planned"},
    ),
    ("no-phone", {"phone": None}, {}, {"sms": "no_phone", "email": "planned"}),
    (
        "extension-is-not-mobile",
        {"phone": "212-555-0143 x45"},
        {},
        {"sms": "invalid_phone", "email": "planned"},
    ),
    ("bad-email", {"email": "bob@"}, {}, {"sms": "planned", "email": "invalid_email"}),
    ("no-zone-at-all", {"country": "XX", "phone": None}, {}, "quarantined:customer_quarantined"),
]


@pytest.mark.parametrize(
    ("customer_values", "invoice_values", "expected"),
    [s[1:] for s in SCENARIOS],
    ids=[s[0] for s in SCENARIOS],
)
def test_decision_per_channel(customer_values, invoice_values, expected) -> None:
    c = f.customer(**customer_values)
    inv = f.invoice(c["customer_id"], **invoice_values)
    plan = _plan([c], [inv], _opted_in(c))
    if isinstance(expected, str):
        status, reason = expected.split(":")
        rows = plan.decisions.filter(pl.col("invoice_id") == inv["invoice_id"])
        assert rows["status"].unique().to_list() == [status]
        assert rows["reason"].unique().to_list() == [reason]
    else:
        assert _reasons(plan, inv["invoice_id"]) == expected


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([], {"sms": "no_opt_in", "email": "planned"}),
        ([("sms", "opt_in")], {"sms": "planned", "email": "one_per_day"}),
        ([("sms", "opt_in"), ("email", "opt_out")], {"sms": "opted_out", "email": "opted_out"}),
        ([("email", "opt_in"), ("sms", "opt_out")], {"sms": "opted_out", "email": "opted_out"}),
        (
            [("sms", "opt_in"), ("email", "opt_in"), ("whatsapp", "opt_out")],
            {"sms": "opted_out", "email": "opted_out"},
        ),
        (
            [("sms", "opt_in"), ("voice", "opt_out"), ("all", "opt_in")],
            {"sms": "opted_out", "email": "opted_out"},
        ),
        ([("Text Message", "opt_in")], {"sms": "no_opt_in", "email": "planned"}),
        ([("Text", "Yes"), ("E-Mail", "UNSUBSCRIBE")], {"sms": "opted_out", "email": "opted_out"}),
        ([("SMS/Text", "START")], {"sms": "planned", "email": "one_per_day"}),
        (
            [("sms", "opt_in"), ("email", "opt_in"), ("sms", "maybe")],
            {"sms": "consent_unclear", "email": "consent_unclear"},
        ),
        (
            [("sms", "opt_in"), ("sms", "opt_out"), (None, "opt_in")],
            {"sms": "consent_unclear", "email": "consent_unclear"},
        ),
        (
            [("sms", "opt_in"), ("  ", "opt_out")],
            {"sms": "consent_unclear", "email": "consent_unclear"},
        ),
    ],
    ids=[
        "no-consent-email-only",
        "sms-opt-in",
        "email-opt-out-is-global",
        "stop-is-global",
        "unknown-channel-opt-out-is-global",
        "unknown-channel-opt-out-outlives-an-all-opt-in",
        "unknown-channel-opt-in-grants-nothing",
        "spellings-read-through-the-tables",
        "sms-alias-opt-in",
        "unreadable-status-blocks-every-channel",
        "unclear-is-checked-before-opted-out",
        "blank-channel-blocks-every-channel",
    ],
)
def test_consent_gates_channels(events, expected) -> None:
    c = f.customer()
    inv = f.invoice(c["customer_id"])
    consent = [
        f.consent(c["customer_id"], ch, st, occurred_at=f"2026-01-0{i + 1}T00:00:00Z")
        for i, (ch, st) in enumerate(events)
    ]
    assert _reasons(_plan([c], [inv], consent), inv["invoice_id"]) == expected


@pytest.mark.parametrize(
    ("attempted_at", "expected"),
    [
        ("2026-11-22T14:00:00Z", "contacted_recently"),
        ("2026-11-21T12:00:00Z", "planned"),
    ],
    ids=["inside-24h-of-window-start", "older-than-24h"],
)
def test_frequency_cap_uses_outside_contact_history(attempted_at, expected) -> None:
    c = f.customer()
    inv = f.invoice(c["customer_id"])
    plan = _plan([c], [inv], _opted_in(c), [f.contact(c["customer_id"], attempted_at, "email")])
    assert _reasons(plan, inv["invoice_id"])["sms"] == expected


def test_several_invoices_make_one_message_per_customer_and_day() -> None:
    c = f.customer()
    a = f.invoice(c["customer_id"], due_date="2026-11-24", amount_due="10.00")
    b = f.invoice(c["customer_id"], due_date="2026-11-20", amount_due="5.50")
    plan = _plan([c], [a, b], _opted_in(c))
    planned = plan.decisions.filter(pl.col("status") == "planned")
    assert planned.height == 2
    assert planned["message_key"].n_unique() == 1
    message = plan.messages.row(0, named=True)
    assert message["invoice_count"] == 2
    assert message["amount_total_minor"] == 1550
    assert message["cadence_step"] == 3
    assert "$15.50" in message["body"]
    assert message["message_key"] == message_key(c["customer_id"], "sms", TODAY)


def test_shared_phone_is_not_texted() -> None:
    a, b = f.customer(phone="+1 212 555 0199"), f.customer(phone="(212) 555-0199")
    inv_a, inv_b = f.invoice(a["customer_id"]), f.invoice(b["customer_id"])
    plan = _plan([a, b], [inv_a, inv_b], _opted_in(a) + _opted_in(b))
    assert _reasons(plan, inv_a["invoice_id"]) == {"sms": "phone_shared", "email": "planned"}
    assert _reasons(plan, inv_b["invoice_id"]) == {"sms": "phone_shared", "email": "planned"}


def _prior(rows):
    return pl.DataFrame(rows, schema=PRIOR_SCHEMA, orient="row")


def test_max_attempts_counts_earlier_messages_of_the_invoice() -> None:
    c = f.customer()
    inv = f.invoice(c["customer_id"], due_date="2026-11-16")
    prior = _prior(
        [
            (
                f"k{i}",
                c["customer_id"],
                "sms",
                date(2026, 11, d),
                datetime(2026, 11, d, 15),
                inv["invoice_id"],
                "delivered",
            )
            for i, d in enumerate((1, 5, 9))
        ]
    )
    assert (
        _reasons(_plan([c], [inv], _opted_in(c), prior=prior), inv["invoice_id"])["sms"]
        == "max_attempts"
    )
    two = prior.head(2)
    assert (
        _reasons(_plan([c], [inv], _opted_in(c), prior=two), inv["invoice_id"])["sms"] == "planned"
    )


def test_own_earlier_message_counts_for_the_frequency_cap() -> None:
    c = f.customer()
    inv = f.invoice(c["customer_id"])
    prior = _prior(
        [
            (
                "old",
                c["customer_id"],
                "email",
                date(2026, 11, 22),
                datetime(2026, 11, 22, 20),
                "X",
                "sent",
            )
        ]
    )
    assert (
        _reasons(_plan([c], [inv], _opted_in(c), prior=prior), inv["invoice_id"])["sms"]
        == "contacted_recently"
    )


def test_rerun_does_not_count_its_own_message() -> None:
    c = f.customer()
    inv = f.invoice(c["customer_id"])
    key = message_key(c["customer_id"], "sms", TODAY)
    prior = _prior(
        [
            (
                key,
                c["customer_id"],
                "sms",
                date(2026, 11, 23),
                datetime(2026, 11, 23, 17),
                inv["invoice_id"],
                "ready",
            )
        ]
    )
    plan = _plan([c], [inv], _opted_in(c), prior=prior)
    assert _reasons(plan, inv["invoice_id"])["sms"] == "planned"
    assert plan.messages["message_key"].to_list() == [key]


def test_channel_switch_on_a_rerun_never_makes_a_second_message_that_day() -> None:
    c = f.customer()
    inv = f.invoice(c["customer_id"])
    email_key = message_key(c["customer_id"], "email", TODAY)
    prior = _prior(
        [
            (
                email_key,
                c["customer_id"],
                "email",
                date(2026, 11, 23),
                datetime(2026, 11, 23, 17),
                inv["invoice_id"],
                "planned",
            )
        ]
    )
    plan = _plan([c], [inv], _opted_in(c), prior=prior)
    assert _reasons(plan, inv["invoice_id"])["sms"] == "already_messaged_today"


def test_every_invoice_row_gets_one_decision_per_channel() -> None:
    c = f.customer()
    rows = [
        f.invoice(c["customer_id"]),
        f.invoice("missing"),
        f.invoice(c["customer_id"], amount_due="abc"),
    ]
    plan = _plan([c], rows, _opted_in(c))
    assert plan.decisions.height == 6
    assert plan.decisions.group_by("invoice_row").len()["len"].to_list() == [2, 2, 2]
    assert sorted(plan.decisions["status"].unique().to_list()) == [
        "excluded",
        "planned",
        "quarantined",
    ]


def test_consent_unclear_sits_right_before_opted_out() -> None:
    order = list(REASONS)
    assert order.index("consent_unclear") == order.index("opted_out") - 1
    assert "could not be read" in REASONS["consent_unclear"]


def test_unreadable_consent_row_excludes_only_its_customer() -> None:
    unclear, clear = f.customer(), f.customer(phone="+1 212 555 0199", email="bo@example.com")
    inv_u, inv_c = f.invoice(unclear["customer_id"]), f.invoice(clear["customer_id"])
    consent = [
        *_opted_in(unclear),
        *_opted_in(clear),
        f.consent(unclear["customer_id"], "email", "opt_in", occurred_at="not a date"),
    ]
    plan = _plan([unclear, clear], [inv_u, inv_c], consent)
    assert _reasons(plan, inv_u["invoice_id"]) == {
        "sms": "consent_unclear",
        "email": "consent_unclear",
    }
    assert _reasons(plan, inv_c["invoice_id"]) == {"sms": "planned", "email": "one_per_day"}
    details = plan.decisions.filter(pl.col("invoice_id") == inv_u["invoice_id"])["detail"]
    assert details.unique().to_list() == [REASONS["consent_unclear"]]
    assert plan.messages["customer_id"].to_list() == [clear["customer_id"]]
    q = plan.quarantine.filter(pl.col("source") == "consent_events")
    assert q.select("record_key", "scope", "rule").rows() == [
        (unclear["customer_id"], "row", "occurred_at_invalid")
    ]


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([("sms", "opt_in", "2026-11-23T06:00:01Z")], {"sms": "no_opt_in", "email": "planned"}),
        (
            [("sms", "opt_in", "2026-01-01T00:00:00Z"), ("sms", "opt_out", "2026-12-01T00:00:00Z")],
            {"sms": "opted_out", "email": "opted_out"},
        ),
        (
            [("all", "opt_out", "2026-01-01T00:00:00Z"), ("all", "opt_in", "2027-01-01T00:00:00Z")],
            {"sms": "opted_out", "email": "opted_out"},
        ),
    ],
    ids=["future-opt-in-grants-nothing", "future-opt-out-counts-now", "future-re-opt-in-ignored"],
)
def test_consent_dated_after_the_run(events, expected) -> None:
    c = f.customer()
    inv = f.invoice(c["customer_id"])
    consent = [f.consent(c["customer_id"], ch, st, occurred_at=at) for ch, st, at in events]
    plan = _plan([c], [inv], consent)
    assert _reasons(plan, inv["invoice_id"]) == expected
    notes = plan.quarantine.filter(pl.col("rule") == "consent_in_future")
    assert notes["scope"].to_list() == ["field"]


def _planned_row(plan, invoice_id):
    rows = plan.decisions.filter(
        (pl.col("invoice_id") == invoice_id) & (pl.col("status") == "planned")
    )
    assert rows.height == 1
    return rows.row(0, named=True)


def test_decisions_carry_zone_source_and_candidate_zones() -> None:
    c = f.customer()  # preferred America/New_York
    inv = f.invoice(c["customer_id"])
    row = _planned_row(_plan([c], [inv], _opted_in(c)), inv["invoice_id"])
    assert (row["zone_source"], row["candidate_zones"]) == ("preferred", "America/New_York")
    wall = row["send_at_local"]
    assert row["send_at_local_by_zone"] == f"America/New_York {wall:%Y-%m-%d %H:%M}"


def test_halifax_and_st_johns_customer_is_planned_inside_both_windows() -> None:
    c = f.customer(
        country="CA",
        preferred_timezone=None,
        postal_code=None,
        phone="+1 709 555 0100",
        locale="en_CA",
    )
    inv = f.invoice(c["customer_id"], currency="CAD")
    row = _planned_row(_plan([c], [inv], _opted_in(c)), inv["invoice_id"])
    assert row["zone_source"] == "phone"
    assert row["candidate_zones"] == "America/Halifax|America/St_Johns"
    # Halifax 08:00-16:00 = 12:00Z-20:00Z, St John's = 11:30Z-19:30Z on 2026-11-23
    assert row["window_start_utc"] == datetime(2026, 11, 23, 12, 0)
    assert row["window_end_utc"] == datetime(2026, 11, 23, 19, 30)
    assert row["window_start_utc"] <= row["send_at_utc"] < row["window_end_utc"]
    assert row["send_at_local_by_zone"].startswith("America/Halifax 2026-11-23 ")
    assert "; America/St_Johns 2026-11-23 " in row["send_at_local_by_zone"]


def test_postal_code_with_two_zones_uses_the_intersection() -> None:
    # X0C (Kivalliq): Rankin Inlet (UTC-6 in November: 08:00-16:00 = 14:00Z-22:00Z) and
    # Coral Harbour on EST all year (UTC-5: 13:00Z-21:00Z): common window 14:00Z-21:00Z.
    c = f.customer(
        country="CA", preferred_timezone=None, postal_code="X0C 0A0", phone="+1 212 555 0143"
    )
    inv = f.invoice(c["customer_id"], currency="CAD")
    row = _planned_row(_plan([c], [inv], _opted_in(c)), inv["invoice_id"])
    assert row["zone_source"] == "postal_code"
    assert row["candidate_zones"] == "America/Panama|America/Rankin_Inlet"
    assert (row["window_start_utc"], row["window_end_utc"]) == (
        datetime(2026, 11, 23, 14, 0),
        datetime(2026, 11, 23, 21, 0),
    )


def test_zones_without_a_common_window_are_excluded() -> None:
    # Russia by country only: Kaliningrad (UTC+2) to Kamchatka (UTC+12) never share 8 hours.
    c = f.customer(country="RU", preferred_timezone=None, postal_code=None, phone=None)
    inv = f.invoice(c["customer_id"], currency="RUB")
    plan = _plan([c], [inv], _opted_in(c))
    rows = plan.decisions.filter(pl.col("invoice_id") == inv["invoice_id"])
    assert rows["reason"].unique().to_list() == ["no_common_window"]
    assert rows["zone_source"].unique().to_list() == ["country"]
    assert rows["send_at_local_by_zone"].is_null().all()
