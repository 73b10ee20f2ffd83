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
        ("2026-11-22", "contacted_recently"),
        ("2026-11-21", "planned"),
    ],
    ids=[
        "inside-24h-of-window-start",
        "older-than-24h",
        "bare-date-may-be-inside-24h",
        "bare-date-whole-day-older-than-24h",
    ],
)
def test_frequency_cap_uses_outside_contact_history(attempted_at, expected) -> None:
    c = f.customer()
    inv = f.invoice(c["customer_id"])
    plan = _plan([c], [inv], _opted_in(c), [f.contact(c["customer_id"], attempted_at, "email")])
    assert _reasons(plan, inv["invoice_id"])["sms"] == expected


@pytest.mark.parametrize(
    ("opt_out_at", "opt_in_at", "expected"),
    [
        ("2026-11-01", "2026-11-01T12:00:00Z", "opted_out"),
        (" 2026-11-01 ", "2026-11-01T23:59:59Z", "opted_out"),
        ("2026-11-01", "2026-11-02T00:00:00Z", "planned"),
        ("2026-11-01T11:00:00Z", "2026-11-01T12:00:00Z", "planned"),
    ],
    ids=[
        "bare-date-opt-out-same-day-as-a-timed-opt-in",
        "bare-date-opt-out-last-second-opt-in",
        "opt-in-the-next-day-is-later",
        "timed-events-keep-their-order",
    ],
)
def test_an_opt_out_known_only_by_its_date_may_be_the_latest_that_day(
    opt_out_at, opt_in_at, expected
) -> None:
    c = f.customer()
    inv = f.invoice(c["customer_id"])
    consent = [
        f.consent(c["customer_id"], "sms", "opt_in", occurred_at=opt_in_at),
        f.consent(c["customer_id"], "sms", "opt_out", occurred_at=opt_out_at),
    ]
    assert _reasons(_plan([c], [inv], consent), inv["invoice_id"])["sms"] == expected


@pytest.mark.parametrize(
    ("preferred", "expected"),
    [
        ("E-mail", "email"),
        (" e_mail ", "email"),
        ("Text", "sms"),
        ("EMAIL", "email"),
        ("fax", "sms"),
        ("all", "sms"),
    ],
    ids=["e-mail", "e_mail-padded", "text-is-sms", "upper-case", "unknown", "all-no-preference"],
)
def test_preferred_channel_spellings_are_read_like_consent_channels(preferred, expected) -> None:
    c = f.customer(preferred_channel=preferred)
    inv = f.invoice(c["customer_id"])
    reasons = _reasons(_plan([c], [inv], _opted_in(c)), inv["invoice_id"])
    assert reasons[expected] == "planned"
    assert reasons[{"sms": "email", "email": "sms"}[expected]] == "one_per_day"


@pytest.mark.parametrize("status", ["opt_out", "opt_in"], ids=["opt-out", "opt-in"])
def test_a_consent_row_naming_a_customer_in_another_case_makes_its_consent_unclear(
    status,
) -> None:
    """'ana-1' for customer 'ANA-1' (a case-insensitive CRM export): the row was quarantined
    customer_unknown and the opt-out lost, so the reminder went out. Which customer the row
    means cannot be told for sure: the customer's consent is unclear on every channel."""
    c = f.customer(customer_id="ANA-1")
    inv = f.invoice("ANA-1")
    consent = [*_opted_in(c), f.consent("ana-1", "sms", status, occurred_at="2026-11-01")]
    plan = _plan([c], [inv], consent)
    assert _reasons(plan, inv["invoice_id"]) == {
        "sms": "consent_unclear",
        "email": "consent_unclear",
    }
    q = plan.quarantine.filter(pl.col("source") == "consent_events")
    assert q.select("record_key", "rule").rows() == [("ANA-1", "customer_id_case_mismatch")]


def test_an_exact_customer_id_still_wins_over_a_case_variant_customer() -> None:
    upper = f.customer(customer_id="AB-1", phone="+1 212 555 0101")
    lower = f.customer(customer_id="ab-1", phone="+1 212 555 0102")
    inv = f.invoice("AB-1")
    consent = [*_opted_in(upper), *_opted_in(lower), f.consent("ab-1", "sms", "opt_out")]
    plan = _plan([upper, lower], [inv], consent)
    assert _reasons(plan, inv["invoice_id"])["sms"] == "planned"
    assert plan.quarantine.filter(pl.col("source") == "consent_events").height == 0


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


def test_a_line_shared_with_an_extension_number_is_not_texted() -> None:
    # b's number has an extension (not textable itself), but it is a's line: a household or
    # an office switchboard, so a's SMS could be read by b.
    a, b = f.customer(phone="+1 212 555 0199"), f.customer(phone="212-555-0199 x143")
    inv_a, inv_b = f.invoice(a["customer_id"]), f.invoice(b["customer_id"])
    plan = _plan([a, b], [inv_a, inv_b], _opted_in(a) + _opted_in(b))
    assert _reasons(plan, inv_a["invoice_id"])["sms"] == "phone_shared"
    assert _reasons(plan, inv_b["invoice_id"])["sms"] == "invalid_phone"


def test_a_number_phonenumbers_only_knows_by_calling_code_is_never_sent_at_a_guessed_hour() -> None:
    # An American Samoa mobile: phonenumbers answers every +1 zone (Adak to Bermuda); with no
    # preferred zone and no postal code that answer is the signal, and its zones share no
    # 08:00-16:00 window, so nothing is planned rather than a guess at the hour.
    c = f.customer(country="US", preferred_timezone=None, postal_code=None, phone="+1 684 733 1234")
    inv = f.invoice(c["customer_id"])
    plan = _plan([c], [inv], _opted_in(c))
    rows = plan.decisions.filter(pl.col("invoice_id") == inv["invoice_id"])
    assert set(rows["reason"]) == {"no_common_window"}
    assert set(rows["zone_source"]) == {"phone"}


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


# paid_at (issue 7): a payment timestamp at or before the run beats the status column.


@pytest.mark.parametrize(
    ("paid_at", "status", "reason"),
    [
        ("2026-11-20T10:00:00Z", "open", "invoice_paid"),
        ("2026-11-23T06:00:00Z", "partially_paid", "invoice_paid"),
        ("2026-11-23T01:00:00-05:00", "open", "invoice_paid"),
        ("2026-11-23T06:00:01Z", "open", "planned"),
        ("2026-12-01T00:00:00Z", "open", "planned"),
    ],
    ids=[
        "before-the-run",
        "exactly-at-as-of",
        "offset-converted-06-utc",
        "a-second-late",
        "future",
    ],
)
def test_paid_at_at_or_before_as_of_means_paid(paid_at, status, reason) -> None:
    c = f.customer()
    inv = f.invoice(c["customer_id"], paid_at=paid_at, status=status)
    plan = _plan([c], [inv], _opted_in(c))
    assert _reasons(plan, inv["invoice_id"])["sms"] == reason
    if reason == "invoice_paid":
        details = plan.decisions.filter(pl.col("invoice_id") == inv["invoice_id"])["detail"]
        assert details.n_unique() == 1
        assert details[0].startswith("paid_at 2026-11-")
        assert f"status says {status}" in details[0]
        assert "2026-11-23T06:00:00Z" in details[0]  # the run's as-of time


def test_paid_status_without_paid_at_keeps_the_reason_description() -> None:
    c = f.customer()
    inv = f.invoice(c["customer_id"], status="paid")
    plan = _plan([c], [inv], _opted_in(c))
    rows = plan.decisions.filter(pl.col("invoice_id") == inv["invoice_id"])
    assert rows["reason"].to_list() == ["invoice_paid", "invoice_paid"]
    assert rows["detail"].to_list() == [REASONS["invoice_paid"]] * 2


def test_other_reasons_keep_their_description_as_detail() -> None:
    c = f.customer()
    inv = f.invoice(c["customer_id"], due_date="2026-11-28")
    plan = _plan([c], [inv], _opted_in(c))
    rows = plan.decisions.filter(pl.col("invoice_id") == inv["invoice_id"])
    assert rows["detail"].to_list() == [REASONS["no_step_due"]] * 2


# contact_history counts toward max_attempts_per_invoice (issue 7, item 4).

THREE_DAYS_AGO = "2026-11-20T15:00:00Z"  # outside the 24 h cap, before the run


def _cadence(max_attempts: int, cap_hours: int = 24) -> Settings:
    return Settings(
        cadence={"max_attempts_per_invoice": max_attempts, "frequency_cap_hours": cap_hours}
    )


def test_history_rows_naming_the_invoice_count_as_attempts() -> None:
    c = f.customer()
    inv, other = f.invoice(c["customer_id"]), f.invoice(c["customer_id"], due_date="2026-11-20")
    history = [
        f.contact(c["customer_id"], THREE_DAYS_AGO, invoice_id=inv["invoice_id"]),
        f.contact(c["customer_id"], "2026-11-19T15:00:00Z", invoice_id=inv["invoice_id"]),
    ]
    plan = _plan([c], [inv, other], _opted_in(c), history, settings=_cadence(2))
    assert _reasons(plan, inv["invoice_id"]) == {"sms": "max_attempts", "email": "max_attempts"}
    assert _reasons(plan, other["invoice_id"])["sms"] == "planned"
    plan = _plan([c], [inv, other], _opted_in(c), history, settings=_cadence(3))
    assert _reasons(plan, inv["invoice_id"])["sms"] == "planned"


def test_history_rows_without_invoice_id_count_for_every_invoice_of_the_customer() -> None:
    c, d = f.customer(), f.customer(phone="+1 212 555 0144")
    a, b = f.invoice(c["customer_id"]), f.invoice(c["customer_id"], due_date="2026-11-20")
    theirs = f.invoice(d["customer_id"])
    history = [f.contact(c["customer_id"], THREE_DAYS_AGO)]
    plan = _plan([c, d], [a, b, theirs], _opted_in(c) + _opted_in(d), history, settings=_cadence(1))
    assert _reasons(plan, a["invoice_id"])["sms"] == "max_attempts"
    assert _reasons(plan, b["invoice_id"])["sms"] == "max_attempts"
    assert _reasons(plan, theirs["invoice_id"])["sms"] == "planned"


def test_history_naming_an_invoice_of_another_customer_does_not_count() -> None:
    c, d = f.customer(), f.customer(phone="+1 212 555 0144")
    inv = f.invoice(c["customer_id"])
    history = [f.contact(d["customer_id"], THREE_DAYS_AGO, invoice_id=inv["invoice_id"])]
    plan = _plan([c, d], [inv], _opted_in(c) + _opted_in(d), history, settings=_cadence(1))
    assert _reasons(plan, inv["invoice_id"])["sms"] == "planned"


def test_history_after_as_of_does_not_count_as_an_attempt() -> None:
    c = f.customer()
    inv = f.invoice(c["customer_id"])
    # 07:00 UTC is after the 06:00 run but before the 08:00 New York window (13:00 UTC), so
    # with no frequency cap only the attempt count could exclude it.
    later = [f.contact(c["customer_id"], "2026-11-23T07:00:00Z", invoice_id=inv["invoice_id"])]
    plan = _plan([c], [inv], _opted_in(c), later, settings=_cadence(1, cap_hours=0))
    assert _reasons(plan, inv["invoice_id"])["sms"] == "planned"
    earlier = [f.contact(c["customer_id"], "2026-11-23T05:00:00Z", invoice_id=inv["invoice_id"])]
    plan = _plan([c], [inv], _opted_in(c), earlier, settings=_cadence(1, cap_hours=0))
    assert _reasons(plan, inv["invoice_id"])["sms"] == "max_attempts"


def test_history_attempts_add_to_outbox_attempts() -> None:
    c = f.customer()
    inv = f.invoice(c["customer_id"])
    prior = _prior(
        [
            (
                "k1",
                c["customer_id"],
                "sms",
                date(2026, 11, 10),
                datetime(2026, 11, 10, 15),
                inv["invoice_id"],
                "delivered",
            )
        ]
    )
    history = [f.contact(c["customer_id"], THREE_DAYS_AGO, invoice_id=inv["invoice_id"])]
    assert (
        _reasons(
            _plan([c], [inv], _opted_in(c), prior=prior, settings=_cadence(2)), inv["invoice_id"]
        )["sms"]
        == "planned"
    )
    plan = _plan([c], [inv], _opted_in(c), history, prior=prior, settings=_cadence(2))
    assert _reasons(plan, inv["invoice_id"])["sms"] == "max_attempts"


def test_overlong_invoice_id_is_quarantined_and_stored_cut() -> None:
    c = f.customer()
    inv = f.invoice(c["customer_id"], invoice_id="I" * 20_000)
    plan = _plan([c], [inv], _opted_in(c))
    assert plan.decisions["status"].to_list() == ["quarantined", "quarantined"]
    assert plan.decisions["reason"].unique().to_list() == ["field_too_long"]
    assert plan.decisions["detail"][0].startswith("invoice_id is 20000 characters long")
    assert plan.decisions["invoice_id"].str.len_chars().to_list() == [1000, 1000]
    assert plan.quarantine["record_key"].str.len_chars().to_list() == [1000]


def test_undecodable_bytes_in_an_invoice_id_are_hex_escaped_in_decisions() -> None:
    from tasks.extract import SENTINEL_BASE, Extracted

    c = f.customer()
    inv = f.invoice(c["customer_id"], invoice_id=f"INV{chr(SENTINEL_BASE + 0xE9)}")
    base = f.extracted([c], [inv], _opted_in(c))
    extracted = Extracted(base.frames, {"invoices": "utf-8"})
    plan = build_plan(
        extracted,
        normalize(extracted),
        pl.DataFrame(schema=PRIOR_SCHEMA),
        as_of=AS_OF,
        settings=Settings(),
        templates=load_templates(),
        new_token=lambda: "tok",
    )
    assert plan.decisions["reason"].to_list() == ["encoding_invalid", "encoding_invalid"]
    assert plan.decisions["invoice_id"].to_list() == ["INV\\xe9", "INV\\xe9"]
    assert plan.quarantine["record_key"].to_list() == ["INV\\xe9"]


def test_add_columns_is_the_left_join_it_replaces() -> None:
    from polars.testing import assert_frame_equal

    from tasks.eligibility import add_columns

    left = pl.DataFrame({"k": ["a", None, "b", "a", "c"], "x": [1, 2, 3, 4, 5]})
    unique = pl.DataFrame({"k": ["a", "b", None], "y": [10, 20, 30]})
    doubled = pl.DataFrame({"k": ["a", "a", "b"], "y": [10, 11, 20]})
    clash = pl.DataFrame({"k": ["a"], "x": [9]})
    for right in (unique, doubled, clash):
        want = left.join(right, on="k", how="left", maintain_order="left")
        assert_frame_equal(add_columns(left, right, "k"), want)
    assert add_columns(left, doubled, "k").height == 7  # not unique: a plain join's rows
