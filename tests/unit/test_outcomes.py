"""Wrap-up codes to outbox states, and the export parsed by column name."""

import csv
import io

import polars as pl
import pytest

from tasks.genesys import _csv_rows, attempted, is_uncontactable
from tasks.outcomes import outcome_of, outcomes_from_contacts, outcomes_from_export


@pytest.mark.parametrize(
    ("code", "state"),
    [
        ("OUTBOUND-MESSAGE-SENT", "sent"),
        ("outbound-message-sent ", "sent"),
        ("OUTBOUND-MESSAGE-FAILED", "failed"),
        ("OUTBOUND-MAX-MESSAGE-LENGTH-EXCEEDED", "failed"),
        ("OUTBOUND-MESSAGE-BLANK", "failed"),
        ("ININ-OUTBOUND-ON-DO-NOT-CALL-LIST", "skipped"),
        ("ININ-OUTBOUND-ZONE-BLOCKED", "skipped"),
        ("OUTBOUND-STUCK-CONTACT", "unknown"),
        ("SOMETHING-NEW-FROM-GENESYS", "unknown"),
        ("ININ-OUTBOUND-MESSAGE-DELIVERED", "sent"),
        ("ININ-OUTBOUND-MESSAGE-UNDELIVERED", "failed"),
    ],
)
def test_wrapup_codes_map_to_states_and_unknown_is_never_failed(code, state) -> None:
    frame = pl.DataFrame({"wrapup": [code]})
    assert frame.select(outcome_of(pl.col("wrapup")).alias("s"))["s"][0] == state


def _export(header: list[str], rows: list[list[str]], *, doubled_first: bool) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow(row)
    first = [f'""{header[0]}""' if doubled_first else header[0], *header[1:]]
    return ("\ufeff" + ",".join(first) + "\n" + out.getvalue()).encode()


@pytest.mark.parametrize("doubled_first", [True, False])
def test_export_is_parsed_by_column_name_whatever_the_order_and_header_quirks(
    doubled_first,
) -> None:
    # the TF fixture layout: BOM, a doubled-quote first header, extra columns, shuffled order
    header = [
        "inin-outbound-id",
        "Phone",
        "ContactCallable",
        "SmsLastResult-Phone",
        "CallRecordLastAttempt-Phone",
        "ZipCodeAutomaticTimeZone",
        "SmsLastAttempt-Phone",
        "Message",
    ]
    rows = [
        ["k1", "+13175550001", "1", "OUTBOUND-MESSAGE-SENT", "", "", "2026-11-23T14:00Z", "Hi"],
        ["k2", "+13175550002", "1", "", "", "", "", "Hi"],
        ["k3", "+13175550003", "0", "WEIRD-CODE", "", "", "2026-11-23T14:01Z", "Hi, you"],
    ]
    parsed = outcomes_from_export(_csv_rows(_export(header, rows, doubled_first=doubled_first)))
    assert parsed.rows() == [
        ("k1", "2026-11-23T14:00Z", "OUTBOUND-MESSAGE-SENT"),
        ("k3", "2026-11-23T14:01Z", "WEIRD-CODE"),
    ]


def test_contacts_give_their_latest_evaluation() -> None:
    contacts = [
        {
            "id": "e1",
            "latestEmailEvaluations": {
                "Email": {"wrapupCodeId": "OUTBOUND-MESSAGE-SENT", "timestamp": "2026-11-23T14:00Z"}
            },
        },
        {"id": "e2"},
    ]
    assert outcomes_from_contacts(contacts).rows() == [
        ("e1", "2026-11-23T14:00Z", "OUTBOUND-MESSAGE-SENT")
    ]
    assert attempted(contacts[1]) == []


@pytest.mark.parametrize(
    ("contact", "verified"),
    [
        ({"callable": False, "contactableStatus": {"SMS": {"contactable": False}}}, True),
        (
            {
                "callable": False,
                "contactableStatus": {
                    "Voice": {"contactable": True},
                    "SMS": {"contactable": False},
                    "Email": {"contactable": False},
                },
            },
            True,
        ),
        ({"callable": True, "contactableStatus": {"SMS": {"contactable": False}}}, False),
        ({"callable": False, "contactableStatus": {"SMS": {"contactable": True}}}, False),
        ({"callable": False}, False),
        ({}, False),
    ],
    ids=["both", "voice-ignored", "still-callable", "sms-contactable", "no-status", "nothing"],
)
def test_uncontactable_is_verified_only_when_both_flags_say_so(contact, verified) -> None:
    assert is_uncontactable(contact) is verified
