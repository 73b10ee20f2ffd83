"""Attempts parsing (export by column name, lookups, agentless), delivery moves, the model
runner's dependency order, money and the SVG chart: pure functions on small inputs."""

from __future__ import annotations

import hashlib
from datetime import date, datetime

import polars as pl
import pytest

from tasks.attempts import (
    attempts_from_agentless,
    attempts_from_contacts,
    attempts_from_export,
    body_sha256,
    build_attempts,
    parse_attempt_times,
)
from tasks.reconcile import chart_svg, delivery_moves, money
from tasks.warehouse import model_order

LOADED = datetime(2026, 11, 24, 6, 0)


def _outbox(*keys: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "message_key": list(keys),
            "customer_id": [f"C-{k}" for k in keys],
            "invoice_ids": ['["I1"]'] * len(keys),
            "channel": ["sms"] * len(keys),
            "to_address": ["+12125550101"] * len(keys),
            "body": [f"body {k}" for k in keys],
            "segments": [1] * len(keys),
            "genesys_contact_list_id": ["L1"] * len(keys),
            "genesys_campaign_id": ["CAMP"] * len(keys),
            "genesys_conversation_id": [None] * len(keys),
            "genesys_message_id": [None] * len(keys),
        },
        schema_overrides={
            "segments": pl.Int32,
            "genesys_conversation_id": pl.String,
            "genesys_message_id": pl.String,
        },
    )


def test_export_is_read_by_column_name_with_bom_and_doubled_quotes() -> None:
    # columns shuffled, extra columns, BOM + doubled quotes on the first header (TF fixture)
    rows = [
        {
            '\ufeff""inin-outbound-id""': "k1",
            "SmsLastResult-Phone": "OUTBOUND-MESSAGE-SENT",
            "Callable-Phone": "1",
            "SmsLastAttempt-Phone": "2026-11-23T14:05:00.000Z",
            "Phone": "+12125550101",
        },
        {
            '\ufeff""inin-outbound-id""': "k2",
            "SmsLastResult-Phone": "",
            "SmsLastAttempt-Phone": "",
            "Phone": "+12125550102",
        },
    ]
    raw, empty = attempts_from_export(rows)
    assert empty == 1
    assert raw.select("message_key", "attempted_at", "wrapup").rows() == [
        ("k1", "2026-11-23T14:05:00.000Z", "OUTBOUND-MESSAGE-SENT")
    ]


def test_other_phone_column_names_are_honoured() -> None:
    rows = [
        {
            "inin-outbound-id": "k1",
            "SmsLastAttempt-Mobile": "2026-11-23T14:05:00Z",
            "SmsLastResult-Mobile": "OUTBOUND-MESSAGE-FAILED",
        }
    ]
    assert attempts_from_export(rows)[0].height == 0
    assert attempts_from_export(rows, "Mobile")[0]["wrapup"].to_list() == [
        "OUTBOUND-MESSAGE-FAILED"
    ]


def test_attempt_times_any_offset_to_naive_utc() -> None:
    parsed = parse_attempt_times(
        pl.Series(["2026-11-23T14:05:00.000Z", "2026-11-23T09:05:00-05:00", "yesterday", " "])
    )
    assert parsed.to_list() == [
        datetime(2026, 11, 23, 14, 5),
        datetime(2026, 11, 23, 14, 5),
        None,
        None,
    ]


def test_build_attempts_keys_to_the_outbox_and_quarantines_what_fails() -> None:
    rows = [
        {
            "inin-outbound-id": "k1",
            "SmsLastAttempt-Phone": "2026-11-23T14:05:00Z",
            "SmsLastResult-Phone": "OUTBOUND-MESSAGE-SENT",
        },
        {
            "inin-outbound-id": "k2",
            "SmsLastAttempt-Phone": "not a time",
            "SmsLastResult-Phone": "OUTBOUND-MESSAGE-SENT",
        },
        {
            "inin-outbound-id": "stranger",
            "SmsLastAttempt-Phone": "2026-11-23T14:05:00Z",
            "SmsLastResult-Phone": "OUTBOUND-MESSAGE-SENT",
        },
        {
            "inin-outbound-id": "k3",
            "SmsLastAttempt-Phone": "2026-11-23T23:59:00-01:00",
            "SmsLastResult-Phone": "OUTBOUND-STUCK-CONTACT",
        },
        {"inin-outbound-id": "k4", "SmsLastAttempt-Phone": "", "SmsLastResult-Phone": ""},
    ]
    raw, empty = attempts_from_export(rows)
    out = build_attempts(
        raw,
        _outbox("k1", "k2", "k3", "k4"),
        source="contact_list_export",
        load_id="l1",
        loaded_at=LOADED,
        run_id="r1",
        rows_in=len(rows),
        not_attempted=empty,
    )
    assert out.accounted
    assert out.attempts.select("message_key", "outcome_class", "attempt_day").rows() == [
        ("k1", "sent", date(2026, 11, 23)),
        ("k3", "unknown", date(2026, 11, 24)),  # 23:59 at -01:00 is 00:59 UTC next day
    ]
    k1 = out.attempts.row(0, named=True)
    assert k1["customer_id"] == "C-k1"
    assert k1["body_sha256"] == hashlib.sha256(b"body k1").hexdigest()
    assert k1["source"] == "contact_list_export"
    assert dict(out.quarantine.select("record_key", "rule").iter_rows()) == {
        "k2": "attempted_at_invalid",
        "stranger": "message_unknown",
    }
    assert set(out.quarantine["source"]) == {"attempts:contact_list_export"}
    assert '"attempted_at":"not a time"' in out.quarantine["raw_values"][0]


def test_contact_lookup_gives_sms_and_email_evaluations() -> None:
    contacts = [
        {
            "id": "e1",
            "latestEmailEvaluations": {
                "Email": {
                    "timestamp": "2026-11-23T15:00:00Z",
                    "wrapupCodeId": "OUTBOUND-MESSAGE-SENT",
                }
            },
        },
        {"id": "e2"},
    ]
    raw, empty = attempts_from_contacts(contacts)
    assert empty == 1
    assert raw.select("message_key", "wrapup").rows() == [("e1", "OUTBOUND-MESSAGE-SENT")]


def test_agentless_carries_the_carrier_id_and_queued_is_no_attempt() -> None:
    answers = [
        (
            "a1",
            {
                "id": "m1",
                "conversationId": "c1",
                "status": "delivery-success",
                "timestamp": "2026-11-23T15:00:00Z",
                "providerMessageId": "SM1",
            },
        ),
        (
            "a2",
            {
                "id": "m2",
                "conversationId": "c2",
                "status": "queued",
                "timestamp": "2026-11-23T15:00:00Z",
            },
        ),
        (
            "a3",
            {
                "id": "m3",
                "conversationId": "c3",
                "status": "failed",
                "timestamp": "2026-11-23T15:00:00Z",
            },
        ),
    ]
    raw, empty = attempts_from_agentless(answers)
    assert empty == 1
    out = build_attempts(
        raw,
        _outbox("a1", "a3"),
        source="agentless",
        load_id="l",
        loaded_at=LOADED,
        run_id="r",
        rows_in=3,
        not_attempted=empty,
    )
    assert out.attempts.select(
        "message_key", "outcome_class", "carrier_message_id", "genesys_message_id"
    ).rows() == [("a1", "sent", "SM1", "m1"), ("a3", "failed", None, "m3")]


def test_body_hash_matches_hashlib_once_per_distinct_body() -> None:
    bodies = pl.Series(["Hi €", "Hi €", None])
    assert body_sha256(bodies).to_list() == [
        hashlib.sha256("Hi €".encode()).hexdigest(),
        hashlib.sha256("Hi €".encode()).hexdigest(),
        None,
    ]


def test_delivery_moves_any_delivered_wins_pending_moves_nothing() -> None:
    matched = pl.DataFrame(
        {
            "message_key": ["a", "a", "b", "c", "d"],
            "delivery": ["undelivered", "delivered", "undelivered", "pending", "unknown"],
            "carrier": ["twilio"] * 5,
            "carrier_message_id": ["SM1", "SM2", "SM3", "SM4", "SM5"],
            "carrier_status_class": ["undelivered", "delivered", "failed", "accepted", "accepted"],
            "carrier_error_code": ["30003", None, "21211", None, None],
        }
    )
    moves = delivery_moves(matched).sort("message_key")
    assert moves.rows() == [
        ("a", "delivered", "carrier twilio SM2: delivered"),
        ("b", "undelivered", "carrier twilio SM3: failed (error 21211)"),
    ]


def test_models_are_created_after_the_models_they_read() -> None:
    models = [
        ("a_daily", "create view a_daily as select * from z_message"),
        ("m_wave", "create view m_wave as select * from z_message join a_daily using (x)"),
        ("z_message", "-- reads a_daily? no: only in a comment\ncreate view z_message as select 1"),
    ]
    assert [n for n, _ in model_order(models)] == ["z_message", "a_daily", "m_wave"]
    with pytest.raises(ValueError, match="cycle"):
        model_order([("a", "select * from b"), ("b", "select * from a")])


def test_the_dialect_sibling_replaces_the_generic_model(tmp_path, monkeypatch) -> None:
    from tasks import warehouse

    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "v.sql").write_text("generic")
    (folder / "v.duckdb.sql").write_text("duck")
    (folder / "w.postgresql.sql").write_text("pg only")

    class _Files:
        def joinpath(self, _name):
            return folder

    monkeypatch.setattr(warehouse.resources, "files", lambda _pkg: _Files())
    assert warehouse._sql_files("models", "duckdb") == [("v", "duck")]
    assert warehouse._sql_files("models", "postgresql") == [("v", "generic"), ("w", "pg only")]


def test_money_is_exact() -> None:
    assert money(1_234_500, "USD") == "1.234500 USD"
    assert money(-7_900) == "-0.007900"
    assert money(None) == ""


def test_chart_svg_has_a_bar_per_day_and_series() -> None:
    daily = pl.DataFrame(
        {
            "day": [date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 24)],
            "currency": ["USD", "USD", ""],
            "attempts": [3, 2, 1],
            "sent": [3, 2, 1],
            "carrier_messages": [3, 2, 0],
            "delivered": [2, 2, 0],
            "billed_micros": [23_700, 15_800, 0],
            "provisional_micros": [0, 0, 0],
        }
    )
    svg = chart_svg(daily)
    assert svg.startswith("<svg")
    assert svg.rstrip().endswith("</svg>")
    assert svg.count("<title>sent ") == 2  # one per day
    assert "<title>sent 3</title>" in svg  # 11-24: 2 + 1 (no carrier) summed
    assert "<title>delivered 2</title>" in svg
    assert "billed 0.023700 USD" in svg
    assert "billed USD (right axis)" in svg  # the line's legend entry
