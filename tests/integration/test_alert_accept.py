"""The accepting group commit (``accept_events``) decides as the polars path does (issue 12).

``accept_events`` decides each event in plain Python from the directory's cached customer
choices; the oracle here is the frame path the worker uses (``decide_alerts`` ->
``render_alerts`` -> ``_alert_rows``) over the same events, with the intent applied as the
module docstring states it (a ``ready`` alert due now is committed ``sending``, attempt 1).
Both DuckDB and PostgreSQL (the writes go through different loaders).
"""

from __future__ import annotations

import re
from datetime import datetime

import polars as pl
import pytest
import sqlalchemy as sa

from tasks.alerts import (
    EVENT_SCHEMA,
    AlertEvent,
    _alert_rows,
    accept_events,
    directory_from_frames,
)
from tasks.render import load_templates
from tasks.settings import load_settings
from tasks.warehouse import make_engine, migrate, read_frame
from tests.alerts_support import consent, customers

NOW = datetime(2026, 11, 23, 15, 0)  # 10:00 New York, 00:00 Tokyo
TOKEN = re.compile(r"https://\S+")  # the payment link: a fresh random token per render


def _directory():
    people = customers(
        [
            {"customer_id": "C1", "phone_e164": "+13175550001"},  # SMS
            {"customer_id": "C2", "email": "c2@example.com"},  # no consent row: e-mail
            {"customer_id": "C3", "phone_e164": "+13175550003"},  # opted out
            {"customer_id": "C4"},  # no address
            {"customer_id": "C5", "phone_e164": "+13175550005", "time_zones": []},
            {"customer_id": "C6", "phone_e164": "+13175550006", "first_name": "4111111111111111"},
            {"customer_id": "C7", "phone_e164": "+13175550007", "time_zones": ["Asia/Tokyo"]},
            # a shared phone takes no SMS: e-mail instead
            {"customer_id": "C8", "phone_e164": "+13175550008", "email": "c8@example.com"},
            {"customer_id": "C9", "phone_e164": "+13175550008"},
            {
                "customer_id": "C10",
                "phone_e164": "+13175550010",
                "email": "c10@example.com",
                "preferred_channel": "email",
            },
        ]
    )
    opted_in = [(c, "sms", "opt_in", datetime(2026, 1, 1)) for c in ("C1", "C5", "C6", "C7")]
    return directory_from_frames(
        people,
        consent(
            [
                *opted_in,
                ("C3", "sms", "opt_in", datetime(2026, 1, 1)),
                ("C3", "sms", "opt_out", datetime(2026, 2, 1)),
                ("C8", "sms", "opt_in", datetime(2026, 1, 1)),
                ("C9", "sms", "opt_in", datetime(2026, 1, 1)),
                ("C10", "sms", "opt_in", datetime(2026, 1, 1)),
            ]
        ),
    )


def _event(i: int, customer: str, kind: str = "payment_received") -> AlertEvent:
    return AlertEvent(f"e{i}", kind, customer, f"I{i}", 1000 + i, "USD", datetime(2026, 11, 23))


def _masked(frame: pl.DataFrame) -> list[dict]:
    rows = frame.sort("alert_key").to_dicts()
    for row in rows:
        row["body"] = TOKEN.sub("<link>", row["body"]) if row["body"] else row["body"]
    return rows


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_accepted_alerts_match_the_frame_path(
    backend: str, tmp_path, request: pytest.FixtureRequest
) -> None:
    if backend == "duckdb":
        engine = make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    else:
        engine = make_engine(
            request.getfixturevalue("pg_url"), schema=request.getfixturevalue("pg_schema")
        )
    migrate(engine)
    settings = load_settings()
    directory, templates = _directory(), load_templates()
    names = ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C10", "C99", "C1"]
    events = [_event(i, c) for i, c in enumerate(names)]
    events.append(_event(len(names), "C1", kind="payment_failed"))
    batch = [(e, b"{}") for e in events]
    first = accept_events(
        engine,
        batch[:2],
        now=NOW,
        directory=directory,
        templates=templates,
        alerts=settings.alerts,
        cadence=settings.cadence,
        render=settings.render,
    )
    assert first.stored == [True, True]
    # the first two again (replays), one twice in the same group, then the rest
    again = [*batch[:2], batch[3], *batch[2:]]
    accepted = accept_events(
        engine,
        again,
        now=NOW,
        directory=directory,
        templates=templates,
        alerts=settings.alerts,
        cadence=settings.cadence,
        render=settings.render,
    )
    assert accepted.stored == [False, False, True, True, False] + [True] * (len(batch) - 4)

    frame = pl.DataFrame(
        [
            {
                "event_id": e.event_id,
                "kind": e.kind,
                "customer_id": e.customer_id,
                "invoice_id": e.invoice_id,
                "amount_minor": e.amount_minor,
                "currency": e.currency,
            }
            for e in events
        ],
        schema=EVENT_SCHEMA,
    )
    expected = _alert_rows(
        frame,
        _directory(),  # a fresh directory: no cached choices
        templates,
        alerts=settings.alerts,
        cadence=settings.cadence,
        render=settings.render,
        now=NOW,
    )
    due = pl.col("state") == "ready"
    expected = expected.with_columns(
        pl.when(due).then(pl.lit("sending")).otherwise("state").alias("state"),
        pl.when(due).then(pl.lit("attempt 1")).otherwise("state_reason").alias("state_reason"),
        pl.when(due).then(pl.lit(1)).otherwise("attempts").cast(pl.Int32).alias("attempts"),
    )
    with engine.begin() as conn:
        stored = read_frame(conn, f"select {', '.join(expected.columns)} from alerts")
        log = read_frame(
            conn, "select alert_key, from_state, to_state, detail, at_utc from alert_log"
        )
        events_stored = conn.execute(sa.text("select count(*) from alert_events")).scalar_one()
    engine.dispose()
    assert events_stored == len(events)
    assert _masked(stored.cast(dict(expected.schema))) == _masked(expected)  # type: ignore[arg-type]
    # the cases this directory was built for, named (so the oracle cannot drift unnoticed)
    by_key = {r["alert_key"]: r for r in expected.to_dicts()}
    assert {k: (r["channel"], r["state"], r["state_reason"]) for k, r in by_key.items()} == {
        "e0": ("sms", "sending", "attempt 1"),
        "e1": ("email", "sending", "attempt 1"),
        "e2": (None, "excluded", "opted_out"),
        "e3": (None, "excluded", "no_channel"),
        "e4": ("sms", "excluded", "timezone_unknown"),
        "e5": ("sms", "excluded", "pci_pan"),
        "e6": ("sms", "held", None),
        "e7": ("email", "sending", "attempt 1"),
        "e8": ("email", "sending", "attempt 1"),
        "e9": (None, "excluded", "customer_unknown"),
        "e10": ("sms", "sending", "attempt 1"),
        "e11": ("sms", "sending", "attempt 1"),
    }
    sending = sorted(k for k, r in by_key.items() if r["state"] == "sending")
    assert sorted(r["alert_key"] for r in first.to_send + accepted.to_send) == sending
    assert all(r["attempts"] == 1 and r["state"] == "sending" for r in accepted.to_send)
    # every alert logged decided once (a due one as ready), every intent once
    decided = {
        r["alert_key"]: (r["to_state"], r["detail"])
        for r in log.filter(pl.col("from_state").is_null()).to_dicts()
    }
    assert decided == {
        k: ("ready", "decided")
        if r["state"] == "sending"
        else (r["state"], r["state_reason"] or "decided")
        for k, r in by_key.items()
    }
    intents = log.filter(pl.col("to_state") == "sending")
    assert sorted(intents["alert_key"].to_list()) == sending
    assert set(intents["detail"]) == {"attempt 1"}
    assert set(log["at_utc"]) == {NOW}
