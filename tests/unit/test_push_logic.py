from datetime import date, datetime, timedelta

import polars as pl
import pytest

from tasks.genesys import OutcomeUnknown
from tasks.normalize import normalize
from tasks.push import (
    campaign_body,
    capacity_plan,
    contact_rows,
    list_generation,
    list_name,
    names_for,
    recheck,
    rule_set_body,
)
from tasks.settings import CadenceSettings, GenesysSettings
from tests import factories as f


def _outbox(rows) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "message_key": pl.String,
            "customer_id": pl.String,
            "channel": pl.String,
            "invoice_ids": pl.String,
        },
        orient="row",
    )


def _fresh(invoice_status="open", consent=("sms", "opt_in")):
    c = f.customer(customer_id="C1")
    inv = f.invoice(
        "C1",
        invoice_id="I1",
        status=invoice_status,
        amount_due="0.00" if invoice_status == "paid" else "10.00",
    )
    other = f.invoice("C1", invoice_id="I2")
    events = [
        f.consent("C1", "sms"),
        f.consent("C1", consent[0], consent[1], occurred_at="2026-11-22T00:00:00Z"),
    ]
    return normalize(f.extracted([c], [inv, other], events))


@pytest.mark.parametrize(
    ("status", "consent", "expected"),
    [
        ("open", ("sms", "opt_in"), []),
        ("paid", ("sms", "opt_in"), [("k1", "paid_since_planning")]),
        ("void", ("sms", "opt_in"), [("k1", "paid_since_planning")]),
        ("open", ("sms", "opt_out"), [("k1", "opted_out_since_planning")]),
        ("open", ("email", "opt_out"), [("k1", "opted_out_since_planning")]),
    ],
    ids=["still-due", "paid", "voided", "stop-by-sms", "unsubscribed-by-email-is-global"],
)
def test_recheck_cancels_paid_and_opted_out(status, consent, expected) -> None:
    outbox = _outbox([("k1", "C1", "sms", "I1,I2")])
    stale = recheck(outbox, _fresh(status, consent), CadenceSettings())
    assert stale.rows() == expected


@pytest.mark.parametrize(
    "consent",
    [("sms", "maybe"), (None, "opt_in"), ("sms", "opt_in", "not a date"), ("whatsapp", "stop")],
    ids=["unreadable-status", "blank-channel", "unreadable-time", "unknown-channel-opt-out"],
)
def test_recheck_cancels_when_consent_can_no_longer_be_read_or_is_out(consent) -> None:
    c = f.customer(customer_id="C1")
    events = [
        f.consent("C1", "sms"),
        f.consent("C1", consent[0], consent[1], occurred_at=(consent[2:] or ["2026-11-22"])[0]),
    ]
    fresh = normalize(f.extracted([c], [f.invoice("C1", invoice_id="I1")], events))
    outbox = _outbox([("k1", "C1", "sms", "I1"), ("k2", "C1", "email", "I1")])
    assert recheck(outbox, fresh, CadenceSettings()).rows() == [
        ("k1", "opted_out_since_planning"),
        ("k2", "opted_out_since_planning"),
    ]


@pytest.mark.parametrize(
    ("paid_at", "expected"),
    [
        ("2026-11-23T09:59:00Z", [("k1", "paid_since_planning")]),
        ("2026-11-23T10:00:00Z", [("k1", "paid_since_planning")]),
        ("2026-11-23T10:01:00Z", []),
        (None, []),
    ],
    ids=["paid-before-now", "paid-at-now", "paid-after-now", "no-paid-at"],
)
def test_recheck_cancels_an_invoice_whose_paid_at_has_passed_whatever_its_status(
    paid_at, expected
) -> None:
    c = f.customer(customer_id="C1")
    inv = f.invoice("C1", invoice_id="I1", status="open", paid_at=paid_at)
    fresh = normalize(f.extracted([c], [inv], [f.consent("C1", "sms")]))
    outbox = _outbox([("k1", "C1", "sms", "I1")])
    now = datetime(2026, 11, 23, 10, 0)
    assert recheck(outbox, fresh, CadenceSettings(), now=now).rows() == expected


def test_recheck_cancels_when_an_invoice_vanished() -> None:
    outbox = _outbox([("k1", "C1", "sms", "I1,GONE")])
    assert recheck(outbox, _fresh(), CadenceSettings()).rows() == [("k1", "paid_since_planning")]


@pytest.mark.parametrize(
    ("phone", "email", "expected"),
    [
        ("+1 212 555 0143", " Ana.Silva@Example.com", []),
        ("+1 212 555 0199", "ana.silva@example.com", [("k1", "address_changed_since_planning")]),
        (None, "ana.silva@example.com", [("k1", "address_changed_since_planning")]),
        ("+1 212 555 0143", "ana@elsewhere.com", [("k2", "address_changed_since_planning")]),
        ("+1 212 555 0143", "not an address", [("k2", "address_changed_since_planning")]),
    ],
    ids=["unchanged", "new-number", "number-removed", "new-e-mail", "e-mail-now-invalid"],
)
def test_recheck_cancels_when_the_address_changed_since_planning(phone, email, expected) -> None:
    """A number given up and reassigned, or replaced in the CRM between the build and the push:
    the planned text must not go to the old address."""
    c = f.customer(customer_id="C1", phone=phone, email=email)
    consent = [f.consent("C1", "sms"), f.consent("C1", "email")]
    fresh = normalize(f.extracted([c], [f.invoice("C1", invoice_id="I1")], consent))
    outbox = _outbox([("k1", "C1", "sms", "I1"), ("k2", "C1", "email", "I1")]).with_columns(
        pl.Series("to_address", ["+12125550143", "ana.silva@example.com"])
    )
    assert recheck(outbox, fresh, CadenceSettings()).sort("message_key").rows() == expected


def _outstanding(n: int, window_end: datetime) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "message_key": [f"k{i:04d}" for i in range(n)],
            "window_end_utc": [window_end] * n,
            "wave_start_utc": [datetime(2026, 11, 23, 13)] * n,
            "send_at_utc": [datetime(2026, 11, 23, 13)] * n,
        }
    )


@pytest.mark.parametrize(
    ("n", "rate", "minutes_left", "fitting"),
    [(100, 10, 60, 100), (700, 10, 60, 600), (5, 1, 0, 0), (61, 1, 60, 60)],
    ids=["fits", "over-by-100", "window-closed", "one-over"],
)
def test_capacity_plan(n, rate, minutes_left, fitting) -> None:
    now = datetime(2026, 11, 23, 20, 0)
    end = now + timedelta(minutes=minutes_left)
    plan = capacity_plan(_outstanding(n, end), now=now, messages_per_minute=rate)
    assert plan["fits"].sum() == fitting


def test_capacity_is_earliest_deadline_first() -> None:
    now = datetime(2026, 11, 23, 20, 0)
    early = _outstanding(30, datetime(2026, 11, 23, 20, 30))
    late = _outstanding(30, datetime(2026, 11, 23, 21, 0)).with_columns(
        pl.col("message_key") + "-late"
    )
    plan = capacity_plan(pl.concat([late, early]), now=now, messages_per_minute=1)
    fits = dict(plan.iter_rows())
    assert all(fits[k] for k in early["message_key"])
    assert sum(fits[k] for k in late["message_key"]) == 30


def test_contact_rows_use_the_message_key_as_contact_id() -> None:
    messages = pl.DataFrame(
        {
            "message_key": ["k1"],
            "to_address": ["+13175550123"],
            "body": ["Hi"],
            "subject": [None],
            "time_zone": ["America/Halifax|America/St_Johns"],
            "wave_id": ["sms:x:2026-11-23:00"],
            "local_send_date": [date(2026, 11, 23)],
        }
    )
    assert contact_rows(messages, "sms") == [
        {
            "id": "k1",
            "data": {
                "MessageKey": "k1",
                "Phone": "+13175550123",
                "Message": "Hi",
                "TimeZone": "America/Halifax",
                "WaveId": "sms:x:2026-11-23:00",
                "LocalSendDate": "2026-11-23",
            },
        }
    ]


def test_names_are_deterministic_per_channel_and_sender() -> None:
    genesys = GenesysSettings(sms_sender="+13175550100")
    assert names_for("sms", genesys)["campaign"] == "reminders-sms-13175550100"
    assert names_for("email", genesys)["contact_list"] == "reminders-email"
    assert names_for("sms", genesys)["rule_set"] == "reminders-uncontactable-after-send"


@pytest.mark.parametrize(
    ("name", "generation"),
    [
        ("reminders-sms-1317", 1),
        ("reminders-sms-1317-2", 2),
        ("reminders-sms-1317-13", 13),
        ("reminders-sms-1317-contacts", 1),
        ("reminders-sms-1317-x2", 1),
    ],
)
def test_list_generations_roll_over_under_deterministic_names(name, generation) -> None:
    base = "reminders-sms-1317"
    assert list_generation(name, base) == generation
    assert list_name(base, generation + 1) == f"{base}-{generation + 1}"
    assert list_name(base, 1) == base


def test_every_campaign_references_the_mark_uncontactable_rule_set() -> None:
    genesys = GenesysSettings()
    body = rule_set_body(genesys)
    assert body["name"] == "reminders-uncontactable-after-send"
    (rule,) = body["rules"]
    assert rule["category"] == "PostContact"
    (condition,) = rule["conditions"]
    codes = condition["lastResultOverallConditionSettings"]
    # any wrap-up code the pipeline knows, sent or not, for both media
    for code in ("OUTBOUND-MESSAGE-SENT", "OUTBOUND-MESSAGE-FAILED", "OUTBOUND-MESSAGE-BLANK"):
        assert code in codes["smsWrapupCodes"]
        assert code in codes["emailWrapupCodes"]
    assert rule["actions"] == [
        {"markContactUncontactableActionSettings": {"mediaTypes": ["SMS", "Email"]}}
    ]
    campaign = campaign_body(
        "sms", genesys, name="c", contact_list_id="l", time_set_id="t", rule_set_ids=["rs"]
    )
    assert campaign["ruleSets"] == [{"id": "rs"}]


class _FlakyList:
    """A contact list whose first add commits and then loses the connection."""

    def __init__(self) -> None:
        self.contacts: dict[str, dict] = {"old": {"id": "old"}}
        self.adds: list[list[str]] = []
        self.dropped = False

    def add_contacts(self, list_id, contacts, *, priority=True, do_not_queue=False, read_back=True):
        contacts = contacts.to_dicts()  # the push hands the client a frame of contacts
        self.adds.append([c["id"] for c in contacts])
        for c in contacts:
            self.contacts[c["id"]] = c
        if not self.dropped:
            self.dropped = True
            raise OutcomeUnknown("POST", "/contacts", "RemoteProtocolError")
        return contacts

    def get_contacts(self, list_id, ids):
        return [self.contacts[i] for i in ids if i in self.contacts]


def test_an_add_with_unknown_outcome_is_settled_by_lookup_and_never_replayed() -> None:
    from tasks.push import _add_settled

    fake = _FlakyList()
    # the first attempt reached Genesys for all three, then the connection broke
    batch = _outbox_rows(["k1", "k2", "k3"])
    accepted, refused = _add_settled(fake, "l1", batch, "sms")
    assert sorted(accepted) == ["k1", "k2", "k3"]
    assert refused == []
    assert fake.adds == [["k1", "k2", "k3"]]


def test_after_a_lost_add_only_the_missing_contacts_are_added() -> None:
    from tasks.push import _add_settled

    class HalfList(_FlakyList):
        def add_contacts(self, list_id, contacts, **kwargs):
            if not self.dropped:
                rows = contacts.to_dicts()
                self.adds.append([c["id"] for c in rows])
                self.contacts[rows[0]["id"]] = rows[0]
                self.dropped = True
                raise OutcomeUnknown("POST", "/contacts", "RemoteProtocolError")
            return super().add_contacts(list_id, contacts, **kwargs)

    fake = HalfList()
    accepted, _ = _add_settled(fake, "l1", _outbox_rows(["k1", "k2", "k3"]), "sms")
    assert sorted(accepted) == ["k1", "k2", "k3"]
    assert fake.adds == [["k1", "k2", "k3"], ["k2", "k3"]]


def _outbox_rows(keys: list[str]) -> pl.DataFrame:
    n = len(keys)
    return pl.DataFrame(
        {
            "message_key": keys,
            "to_address": ["+13175550123"] * n,
            "body": ["Hi"] * n,
            "subject": [None] * n,
            "time_zone": ["America/New_York"] * n,
            "wave_id": ["w"] * n,
            "local_send_date": [date(2026, 11, 23)] * n,
        },
        schema_overrides={"subject": pl.String},
    )
