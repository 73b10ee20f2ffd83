"""Table-level gates (data_quality.gates): each rule stops a run with its numbers, thresholds
are configurable, the planned-output suite re-checks the plan, Data Docs are built."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import polars as pl
import pytest
from pydantic import ValidationError

from data_quality.gates import GATE_RULES, GateValidator, messages_gate_frame
from flows.build_reminders import check_input_gates, check_plan_gates
from tasks.eligibility import PRIOR_SCHEMA
from tasks.errors import GateFailed
from tasks.normalize import normalize
from tasks.plan import build_plan
from tasks.render import load_templates
from tasks.settings import Settings
from tests import factories as f

AS_OF = datetime(2026, 11, 23, 6, 0)
GOOD_PHONE = "+1 212 555 0143"


@pytest.fixture(scope="session")
def validator_factory():
    """Great Expectations is imported once per session; each test gets a fresh context."""
    GateValidator(None)
    return GateValidator


def _customers(n: int, **overrides_by_index) -> list[dict]:
    rows = [f.customer() for _ in range(n)]
    for index, values in overrides_by_index.items():
        rows[int(index.lstrip("_"))] |= values
    return rows


def _inputs(customers, invoices=(), consent=(), history=()):
    extracted = f.extracted(customers, list(invoices), list(consent), list(history))
    return extracted, normalize(extracted, as_of=AS_OF)


def _input_failures(validator_factory, extracted, normalized, settings=None, previous=None):
    report = check_input_gates(
        validator_factory(None),
        extracted,
        normalized,
        settings or Settings(),
        AS_OF,
        previous or {},
    )
    return {o.rule_id: o for o in report.failures}, report


def test_every_rule_has_an_input_expectation_and_message() -> None:
    inputs = {"customers", "invoices", "consent_events", "contact_history", "messages", "decisions"}
    for rule in GATE_RULES:
        assert rule.input in inputs
        assert rule.expectation.startswith("Expect")
        assert "{input}" in rule.message


def test_clean_inputs_pass_every_input_gate(validator_factory) -> None:
    customers = _customers(10)
    invoices = [f.invoice(c["customer_id"]) for c in customers]
    failures, report = _input_failures(validator_factory, *_inputs(customers, invoices))
    assert failures == {}
    assert {o.rule_id for o in report.outcomes} >= {"phone_invalid_share", "amount_negative_share"}


def test_invalid_phones_over_the_threshold_stop_the_run(validator_factory) -> None:
    # 3 of 20 phones cannot be numbers: 15 % > the default 10 %.
    customers = _customers(20, **{f"_{i}": {"phone": "call me maybe"} for i in range(3)})
    failures, _ = _input_failures(validator_factory, *_inputs(customers))
    found = failures["phone_invalid_share"]
    assert (found.count, found.total) == (3, 20)
    assert found.observed == pytest.approx(3 / 20)
    assert found.threshold == pytest.approx(0.10)
    assert "3 of 20 phone numbers" in found.message
    assert "15.0%" in found.message
    assert "10.0%" in found.message
    error = GateFailed("input", list(failures.values()), "/tmp/docs/index.html")
    assert "phone_invalid_share" in str(error)
    assert "/tmp/docs/index.html" in str(error)


def test_invalid_phones_under_the_threshold_pass(validator_factory) -> None:
    customers = _customers(20, _0={"phone": "call me maybe"})  # 5 %
    failures, _ = _input_failures(validator_factory, *_inputs(customers))
    assert "phone_invalid_share" not in failures


def test_a_threshold_is_configurable_per_rule(validator_factory) -> None:
    customers = _customers(20, **{f"_{i}": {"phone": "call me maybe"} for i in range(3)})
    settings = Settings(quality={"gates": {"thresholds": {"phone_invalid_share": 0.2}}})
    failures, _ = _input_failures(validator_factory, *_inputs(customers), settings=settings)
    assert "phone_invalid_share" not in failures
    with pytest.raises(ValidationError, match="unknown gate rule"):
        Settings(quality={"gates": {"thresholds": {"phones_invalid": 0.2}}})
    with pytest.raises(ValidationError, match="between 0 and 1"):
        Settings(quality={"gates": {"thresholds": {"phone_invalid_share": 5}}})


def test_a_swapped_phone_email_mapping_stops_the_run(validator_factory) -> None:
    """Every customer's phone holds an e-mail and vice versa: today every contact field is
    quarantined and the run 'succeeds' with nothing planned; the gates stop it."""
    customers = [
        f.customer(phone=f"user{i}@example.com", email=f"+1 212 555 01{i:02d}") for i in range(12)
    ]
    extracted, normalized = _inputs(customers)
    assert normalized.customers.height == 12  # no row rule catches it
    failures, _ = _input_failures(validator_factory, extracted, normalized)
    assert {"phone_invalid_share", "email_invalid_share", "field_quarantine_share"} <= set(failures)
    field = failures["field_quarantine_share"]
    assert (field.count, field.total) == (12, 12)
    assert "12 of 12 accepted rows" in field.message


def test_duplicate_invoice_ids_stop_the_run(validator_factory) -> None:
    customers = _customers(10)
    invoices = [f.invoice(c["customer_id"]) for c in customers]
    invoices[1]["invoice_id"] = invoices[0]["invoice_id"]  # 2 of 10 rows share an id: 20 %
    failures, _ = _input_failures(validator_factory, *_inputs(customers, invoices))
    found = failures["invoice_id_duplicate_share"]
    assert (found.count, found.total) == (2, 10)
    assert "2 of 10 rows share their invoice_id" in found.message


def test_negative_amounts_over_the_threshold_stop_the_run(validator_factory) -> None:
    customers = _customers(10)
    invoices = [f.invoice(c["customer_id"]) for c in customers]
    invoices[0]["amount_due"] = "-12.00"
    invoices[1]["amount_due"] = " -0.50 "
    invoices[2]["amount_due"] = "twelve"  # unreadable: not counted either way
    failures, _ = _input_failures(validator_factory, *_inputs(customers, invoices))
    found = failures["amount_negative_share"]
    assert (found.count, found.total) == (2, 9)


def test_consent_events_in_the_future_stop_the_run(validator_factory) -> None:
    customers = _customers(10)
    consent = [f.consent(c["customer_id"], "sms") for c in customers]
    consent[0]["occurred_at"] = (AS_OF + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    failures, _ = _input_failures(validator_factory, *_inputs(customers, consent=consent))
    found = failures["consent_in_future_share"]
    assert (found.count, found.total) == (1, 10)


def test_a_source_under_half_its_last_run_stops_the_run(validator_factory) -> None:
    extracted, normalized = _inputs(_customers(20))
    failures, _ = _input_failures(
        validator_factory, extracted, normalized, previous={"customers": 41, "invoices": 0}
    )
    found = failures["source_shrunk"]
    assert (found.observed, found.previous, found.expected) == (20, 41, 21)
    assert "20 rows, fewer than 50% of the 41 rows" in found.message
    failures, _ = _input_failures(
        validator_factory, extracted, normalized, previous={"customers": 40}
    )
    assert "source_shrunk" not in failures


# --- the planned-output suite --------------------------------------------------------------


def _plan():
    customers = [f.customer(postal_code="10001") for _ in range(4)]
    invoices = [f.invoice(c["customer_id"], due_date="2026-11-24") for c in customers]
    consent = [f.consent(c["customer_id"], "sms") for c in customers]
    extracted, normalized = _inputs(customers, invoices, consent)
    plan = build_plan(
        extracted,
        normalized,
        pl.DataFrame(schema=PRIOR_SCHEMA),
        as_of=AS_OF,
        settings=Settings(),
        templates=load_templates(),
        new_token=lambda: "tok",
    )
    assert plan.messages.height == 4  # T-1 for all four, by SMS
    return plan


def _plan_failures(validator_factory, plan):
    report = check_plan_gates(validator_factory(None), plan, Settings())
    return {o.rule_id: o for o in report.failures}


def test_an_intact_plan_passes_the_output_suite(validator_factory) -> None:
    assert _plan_failures(validator_factory, _plan()) == {}


def test_the_output_suite_catches_each_broken_property(validator_factory) -> None:
    plan = _plan()
    m = plan.messages
    late = m.with_columns(pl.col("send_at_utc") + pl.duration(hours=9))  # 16:xx local: closed
    cases = {
        "plan_outside_window": late,
        "plan_zone_missing": m.with_columns(
            pl.when(pl.int_range(pl.len()) == 0)
            .then(None)
            .otherwise(pl.col("time_zone"))
            .alias("time_zone")
        ),
        "plan_address_invalid": m.with_columns(
            pl.when(pl.int_range(pl.len()) == 0)
            .then(pl.lit("212 555 0143"))
            .otherwise(pl.col("to_address"))
            .alias("to_address")
        ),
        "plan_one_per_customer_day": pl.concat([m, m.head(1)]),
        "plan_messages_count": m.head(3),
    }
    for rule, messages in cases.items():
        broken = type(plan)(**{**plan.__dict__, "messages": messages})
        assert rule in _plan_failures(validator_factory, broken), rule
    fewer = type(plan)(**{**plan.__dict__, "decisions": plan.decisions.head(5)})
    found = _plan_failures(validator_factory, fewer)["plan_decisions_count"]
    assert (found.observed, found.expected) == (5, 8)


def test_in_window_is_checked_in_every_candidate_zone() -> None:
    # 14:30 UTC is 09:30 in New York but 07:30 in Denver: outside the Denver window.
    messages = pl.DataFrame(
        {
            "time_zone": ["America/Denver|America/New_York", "America/New_York"],
            "candidate_zones": ["America/Denver|America/New_York", "America/New_York"],
            "send_at_utc": [datetime(2026, 11, 23, 14, 30)] * 2,
            "local_send_date": [datetime(2026, 11, 23).date()] * 2,
            "channel": ["sms", "sms"],
            "to_address": ["+12125550143", "+12125550144"],
            "customer_id": ["C1", "C2"],
        }
    )
    frame = messages_gate_frame(messages, time(8), time(16))
    assert frame["in_window"].to_list() == [False, True]


def test_data_docs_are_built_per_run_and_hold_no_contact_data(validator_factory, tmp_path):
    customers = _customers(20, **{f"_{i}": {"phone": "call me maybe"} for i in range(3)})
    extracted, normalized = _inputs(customers)
    validator = validator_factory(tmp_path / "docs")
    check_input_gates(validator, extracted, normalized, Settings(), AS_OF, {})
    index = tmp_path / "docs" / "index.html"
    assert validator.docs_index == index
    assert index.exists()
    pages = list((tmp_path / "docs").rglob("*.html"))
    assert any("customers" in p.name for p in pages if p != index)
    text = "\n".join(p.read_text(encoding="utf-8") for p in pages)
    assert "phone_ok" in text
    assert "call me maybe" not in text
    assert "555 0143" not in text
    assert "Example.com" not in text
