"""Reconciliation models, delivery and idempotency on DuckDB and PostgreSQL, with known answers
from the hand-built case in tests/reconcile_fixture.py."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest
import sqlalchemy as sa

from tasks.attempts import load_attempts
from tasks.reconcile import status_counts, update_delivery
from tasks.warehouse import make_engine, migrate, read_frame
from tests import reconcile_fixture as fx

NOW = datetime(2026, 11, 27, 12, 30)


@pytest.fixture
def engine(warehouse_settings):
    engine = make_engine(warehouse_settings["url"], schema=warehouse_settings.get("db_schema"))
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def loaded(engine):
    with engine.begin() as conn:
        fx.load_all(conn)
    return engine


def _frame(engine, sql: str, **params) -> pl.DataFrame:
    with engine.connect() as conn:
        return read_frame(conn, sql, params)


def _statuses_by_key(engine) -> dict[str, str]:
    rows = _frame(
        engine,
        "select coalesce(message_key, carrier || ':' || carrier_message_id) as k, status"
        " from reconcile_message",
    )
    out: dict[str, str] = {}
    for k, s in rows.iter_rows():
        out[k] = s if k not in out else out[k] + "," + s
    return out


def test_every_status_with_known_answers(loaded) -> None:
    with loaded.connect() as conn:
        assert status_counts(conn) == fx.EXPECTED_STATUS
    by_key = _statuses_by_key(loaded)
    assert by_key == {
        "m01": "matched",
        "m02": "attempted_not_billed",
        "twilio:SM03": "billed_not_attempted",
        "m04": "price_mismatch",
        "m05": "segment_mismatch",
        "m06": "ambiguous_match",
        "m07": "ambiguous_match",
        "twilio:SM06": "ambiguous_match",
        "m08": "attempted_not_billed",
        "m09": "matched",
        "m10": "pending_final",
        "m11": "pending_final",
        "m12": "matched",
        "m13": "attempted_not_billed",
        "m14": "matched",
        "m15": "matched",
        "m16": "price_mismatch",
        "m19": "matched",
        "vonage:V20": "billed_not_attempted",
        "m21": "matched",
        "vonage:V22": "billed_not_attempted",
    }


def test_match_details(loaded) -> None:
    rows = {
        r["message_key"] or r["carrier_message_id"]: r
        for r in _frame(loaded, "select * from reconcile_message").iter_rows(named=True)
    }
    assert rows["m12"]["match_method"] == "carrier_message_id"
    assert rows["m12"]["carrier_message_id"] == "SM12"
    assert rows["m09"]["match_method"] == "recipient_window"
    assert rows["m09"]["carrier_message_id"] == "SM08"  # the body hash picked m09 over m08
    assert rows["m19"]["carrier_parts"] == 2
    assert rows["m19"]["carrier_segments"] == 2
    assert rows["m19"]["price_micros"] == 2 * fx.US
    assert rows["m14"]["expected_price_micros"] == fx.UK  # longest prefix +44
    assert rows["m04"]["expected_price_micros"] == 2 * fx.US
    assert rows["m04"]["price_micros"] == fx.US
    assert rows["m16"]["detail"] == "price not final after 72 h"
    assert rows["m06"]["candidates"] == 1
    assert rows["SM06"]["candidates"] == 2
    assert rows["SM06"]["candidate_ids"] == "m06,m07"
    assert rows["m21"]["match_method"] == "sender_reference"
    assert (rows["m21"]["carrier_parts"], rows["m21"]["carrier_segments"]) == (2, 2)
    assert rows["m21"]["price_micros"] == 2 * 9_100
    assert rows["m21"]["carrier_message_id"] == "V21a"
    assert rows["m14"]["delivery"] == "undelivered"
    assert rows["m11"]["delivery"] == "pending"
    assert rows["m06"]["delivery"] is None


def test_daily(loaded) -> None:
    rows = _frame(
        loaded,
        "select * from reconcile_daily where day = :d and genesys_campaign_id = 'CAMP1'"
        " and carrier = 'twilio' and price_currency = 'USD'",
        d=fx.D,
    ).to_dicts()
    assert len(rows) == 1
    row = rows[0]
    # m01, m04, m05, m09, m14, m15, m16, m19 (m12 is agentless: no campaign)
    assert row["attempts"] == 8
    assert row["carrier_messages"] == 8
    assert row["delivered"] == 6  # m01, m04, m05, m09, m16, m19
    assert row["undelivered"] == 1  # m14
    assert row["failed_at_carrier"] == 1  # m15
    assert row["billed_micros"] == 7 * fx.US + fx.UK
    assert row["provisional_micros"] == fx.US  # m16
    assert row["matched"] == 5
    assert row["price_mismatch"] == 2
    assert row["segment_mismatch"] == 1
    unbilled = _frame(
        loaded,
        "select sum(attempted_not_billed) as n from reconcile_daily where carrier is null"
        " and day = :d",
        d=fx.D,
    )
    assert unbilled["n"][0] == 3  # m02, m08, m13


def test_billing_period(loaded) -> None:
    rows = {
        (r["carrier"], r["period_start"].month): r
        for r in _frame(
            loaded, "select * from reconcile_billing_period order by carrier"
        ).iter_rows(named=True)
    }
    assert set(rows) == {("twilio", 11), ("vonage", 10), ("vonage", 11)}
    nov = rows[("twilio", 11)]
    assert (nov["period_start"], nov["period_end"]) == (date(2026, 11, 1), date(2026, 11, 30))
    assert nov["invoiced_micros"] == fx.NOV_INVOICE
    assert nov["records_final_micros"] == fx.NOV_FINAL
    assert nov["records_provisional_micros"] == fx.NOV_PROVISIONAL
    assert nov["difference_micros"] == fx.US
    assert nov["status"] == "differs"
    assert nov["billed_not_attempted"] == 1  # SM03
    assert rows[("vonage", 11)]["status"] == "no_invoice"
    assert rows[("vonage", 11)]["records_final_micros"] == 3 * 9_100
    oct_ = rows[("vonage", 10)]
    assert oct_["status"] == "no_invoice"
    assert (oct_["period_start"], oct_["period_end"]) == (date(2026, 10, 1), date(2026, 10, 31))
    assert oct_["records_final_micros"] == fx.VONAGE[3]
    assert oct_["currency"] == "EUR"


def test_billing_period_agrees_when_the_invoice_matches(loaded) -> None:
    with loaded.begin() as conn:
        conn.execute(
            sa.text(
                "update carrier_invoices set amount_micros = amount_micros - :us"
                " where category = 'sms-outbound'"
            ),
            {"us": fx.US},
        )
        conn.execute(
            sa.text(
                "update carrier_records set price_micros = :us, price_final = true"
                " where carrier_message_id = 'SM11'"
            ),
            {"us": 0},
        )
    row = _frame(loaded, "select * from reconcile_billing_period where carrier = 'twilio'")
    assert row["difference_micros"][0] == 0
    assert row["status"][0] == "agrees"


def test_delivery_by_wave(loaded) -> None:
    rows = {
        (r["genesys_campaign_id"], r["wave_id"]): r
        for r in _frame(loaded, "select * from delivery_by_wave").iter_rows(named=True)
    }
    w1 = rows[("CAMP1", "W1")]  # m01, m02, m04, m05
    assert (w1["messages"], w1["delivered"], w1["no_carrier_record"]) == (4, 3, 1)
    assert float(w1["delivery_rate"]) == pytest.approx(0.75)
    w2 = rows[("CAMP1", "W2")]  # m06 m07 m08 m09 m13 m14 m15 m16 m19 (m17 skipped, m18 failed)
    assert w2["messages"] == 9
    assert (w2["delivered"], w2["undelivered"], w2["ambiguous"]) == (3, 2, 2)
    assert w2["no_carrier_record"] == 2  # m08, m13
    assert rows[(None, "W2")]["delivered"] == 1  # m12, agentless
    w3 = rows[("CAMP1", "W3")]
    assert (w3["messages"], w3["not_final"]) == (2, 2)


def _events(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("select count(*) from message_events")).scalar_one()


def test_delivery_moves_sent_messages_from_matched_records_only_once(loaded) -> None:
    with loaded.begin() as conn:
        first = update_delivery(conn, run_id="rec-1", now=NOW)
    assert first == {
        "delivered": len(fx.EXPECTED_DELIVERED),
        "undelivered": len(fx.EXPECTED_UNDELIVERED),
    }
    states = dict(_frame(loaded, "select message_key, state from messages").iter_rows())
    assert {k for k, s in states.items() if s == "delivered"} == fx.EXPECTED_DELIVERED
    assert {k for k, s in states.items() if s == "undelivered"} == fx.EXPECTED_UNDELIVERED
    # the ambiguous, unbilled and pending ones stay sent
    for key in ("m02", "m06", "m07", "m08", "m10", "m11", "m13"):
        assert states[key] == "sent"
    events = _frame(
        loaded,
        "select message_key, from_state, to_state, detail from message_events"
        " where message_key = 'm14'",
    ).to_dicts()
    assert events == [
        {
            "message_key": "m14",
            "from_state": "sent",
            "to_state": "undelivered",
            "detail": "carrier twilio SM14: undelivered (error 30003)",
        }
    ]
    before = _events(loaded)
    with loaded.begin() as conn:
        again = update_delivery(conn, run_id="rec-2", now=NOW)
    assert again == {"delivered": 0, "undelivered": 0}
    assert _events(loaded) == before


def test_wrapup_code_alone_never_delivers(engine) -> None:
    # an attempt with OUTBOUND-MESSAGE-SENT and no carrier record: the message stays sent
    with engine.begin() as conn:
        fx.load_all(conn)
        conn.exec_driver_sql("delete from carrier_records")
        moved = update_delivery(conn, run_id="rec-1", now=NOW)
    assert moved == {"delivered": 0, "undelivered": 0}
    states = set(_frame(engine, "select distinct state from messages")["state"].to_list())
    assert states == {"sent"}


def _snapshot(engine) -> pl.DataFrame:
    frame = _frame(engine, "select * from reconcile_message")
    return frame.sort(
        ["message_key", "attempted_at_utc", "carrier", "carrier_message_id"], nulls_last=True
    )


def test_reloading_a_day_changes_nothing(loaded) -> None:
    before_rows = _frame(loaded, "select * from attempts order by message_key, source")
    before = _snapshot(loaded)
    day = fx.attempts_frame().filter(pl.col("attempt_day") == fx.D)
    with loaded.begin() as conn:
        load_attempts(conn, day)
        load_attempts(conn, day)
    after_rows = _frame(loaded, "select * from attempts order by message_key, source")
    assert after_rows.equals(before_rows)
    assert _snapshot(loaded).equals(before)


def test_a_reload_replaces_exactly_its_keys_at_the_range_edges(engine) -> None:
    # load_attempts bounds its delete by the stage's attempted_at_utc range: rows on both
    # edges are replaced, the same message at another time (outside the range) is kept
    t0, t1, t2 = datetime(2026, 11, 2, 8), datetime(2026, 11, 2, 9), datetime(2026, 11, 3, 8)
    base = fx.attempts_frame().head(1)
    rows = pl.concat(
        [
            base.with_columns(
                pl.lit(key).alias("message_key"),
                pl.lit(at).alias("attempted_at_utc"),
                pl.lit(at.date()).alias("attempt_day"),
                pl.lit("first").alias("load_id"),
            )
            for key, at in (("mA", t0), ("mB", t1), ("mA", t2))
        ]
    )
    with engine.begin() as conn:
        load_attempts(conn, rows)
        load_attempts(conn, rows.head(2).with_columns(pl.lit("second").alias("load_id")))
    stored = _frame(
        engine, "select message_key, attempted_at_utc, load_id from attempts order by 1, 2"
    )
    assert stored.rows() == [("mA", t0, "second"), ("mA", t2, "first"), ("mB", t1, "second")]


def test_incremental_days_equal_a_full_rebuild(warehouse_settings, tmp_path) -> None:
    attempts = fx.attempts_frame()
    results = []
    for mode in ("full", "incremental"):
        url = warehouse_settings["url"]
        schema = warehouse_settings.get("db_schema")
        if url.startswith("duckdb"):
            url = f"duckdb:///{tmp_path / f'{mode}.duckdb'}"
        else:
            schema = f"{schema}_{mode}"
        engine = make_engine(url, schema=schema)
        try:
            migrate(engine)
            with engine.begin() as conn:
                if mode == "full":
                    fx.load_all(conn)
                else:
                    fx.load_all(conn, attempts=attempts.head(0))
            if mode == "incremental":
                for day in sorted(set(attempts["attempt_day"].to_list())):
                    with engine.begin() as conn:
                        load_attempts(conn, attempts.filter(pl.col("attempt_day") == day))
                # and a late re-delivery of the first day
                with engine.begin() as conn:
                    load_attempts(conn, attempts.filter(pl.col("attempt_day") == fx.D))
            results.append(_snapshot(engine))
        finally:
            if schema and not url.startswith("duckdb"):
                with engine.begin() as conn:
                    conn.exec_driver_sql(f"drop schema if exists {schema} cascade")
            engine.dispose()
    full, incremental = results
    assert full.height == sum(fx.EXPECTED_STATUS.values())
    assert incremental.equals(full)


def test_a_late_final_price_replaces_the_pending_one(loaded) -> None:
    with loaded.begin() as conn:
        conn.execute(
            sa.text(
                "update carrier_records set price_micros = :p, price_final = true,"
                " status_class = 'delivered' where carrier_message_id = 'SM11'"
            ),
            {"p": fx.US},
        )
    assert _statuses_by_key(loaded)["m11"] == "matched"


def test_day_by_day_materialization_equals_the_full_view(loaded) -> None:
    from tasks.reconcile import reconcile_days

    days = sorted(set(_frame(loaded, "select distinct day from reconcile_message")["day"]))
    assert len(days) == 3  # 10-15 (V20), 11-23, 11-26
    with loaded.begin() as conn:
        written = reconcile_days(conn, days)
    assert written == sum(fx.EXPECTED_STATUS.values())
    with loaded.begin() as conn:  # a re-run of one day changes nothing
        reconcile_days(conn, [fx.D])
    stored = _frame(loaded, "select * from reconcile_results")
    order = ["message_key", "attempted_at_utc", "carrier", "carrier_message_id"]
    assert stored.sort(order, nulls_last=True).equals(_snapshot(loaded))


def _insert_alert(conn, key: str, channel: str, body: str) -> None:
    conn.execute(
        sa.text(
            "insert into alert_events (event_id, kind, customer_id, invoice_id, amount_minor,"
            " currency, occurred_at_utc, received_at_utc, payload, state, updated_at_utc)"
            " values (:k, 'payment_failed', 'C-A', 'INV-A', 1999, 'USD', :t, :t, '{}',"
            " 'decided', :t)"
        ),
        {"k": f"ev-{key}", "t": NOW},
    )
    conn.execute(
        sa.text(
            "insert into alerts (alert_key, event_id, customer_id, channel, to_address, body,"
            " state, attempts, accepted_at_utc, genesys_conversation_id, genesys_message_id,"
            " created_at_utc, updated_at_utc) values (:k, :e, 'C-A', :c, '+13175550123', :b,"
            " 'accepted', 1, :t, 'conv-a', 'msg-a', :t, :t)"
        ),
        {"k": key, "e": f"ev-{key}", "c": channel, "b": body, "t": NOW},
    )


def test_payment_alerts_take_their_outbox_columns_from_the_alerts_table(loaded) -> None:
    from tasks.attempts import outbox_for_attempts

    reminder = _frame(loaded, "select message_key, to_address from messages")
    taken = reminder["message_key"][0]
    with loaded.begin() as conn:
        _insert_alert(conn, "alert-sms", "sms", "x" * 170)  # GSM-7, 170 > 160: 2 x 153
        _insert_alert(conn, "alert-mail", "email", "y" * 170)
        _insert_alert(conn, taken, "sms", "z")  # a key the outbox holds: the reminder's row
        out = outbox_for_attempts(conn, ["alert-sms", "alert-mail", taken, "nobody"])
    rows = {r["message_key"]: r for r in out.iter_rows(named=True)}
    assert set(rows) == {"alert-sms", "alert-mail", taken}
    assert rows["alert-sms"]["segments"] == 2
    assert rows["alert-sms"]["invoice_ids"] == "INV-A"
    assert rows["alert-sms"]["customer_id"] == "C-A"
    assert rows["alert-sms"]["genesys_message_id"] == "msg-a"
    assert rows["alert-sms"]["genesys_campaign_id"] is None
    assert rows["alert-mail"]["segments"] is None
    assert rows[taken]["to_address"] == reminder["to_address"][0]
