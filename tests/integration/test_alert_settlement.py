"""Settling unknown agentless sends by lookup (``tasks.alerts.settle_unknown``), on DuckDB.

The lookup's answers are given here (a stand-in for the Genesys client's
``find_agentless_sms``, whose wire side is tests/sandbox/test_agentless_lookup.py), so every
outcome is reached: found, not found before / after the consistency delay, the one resend,
several matches, unreadable candidates, a failing lookup, an e-mail.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tasks.alerts import settle_unknown, unsettled_report
from tasks.genesys import SmsLookup, TransientServerError
from tasks.settings import load_settings
from tasks.warehouse import make_engine, migrate

INTENT = datetime(2026, 11, 23, 15, 0)
DELAY = 120.0


class Lookups:
    """Answers ``find_agentless_sms`` from a list, recording each interval asked for."""

    def __init__(self, *answers: SmsLookup | Exception) -> None:
        self.answers, self.asked = list(answers), []

    def find_agentless_sms(self, sender: str, to: str, text: str, *, start, end) -> SmsLookup:
        self.asked.append((to, text, start, end))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def engine(tmp_path: Path):
    engine = make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    migrate(engine)
    yield engine
    engine.dispose()


def _unknown(engine, key: str = "evt-1", channel: str = "sms") -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into alerts (alert_key, event_id, customer_id, channel, to_address, body,"
                " state, attempts, created_at_utc, updated_at_utc) values (:k, :k, 'C1', :ch,"
                " '+13175550001', 'body of ' || :k, 'unknown', 1, :t, :t)"
            ),
            {"k": key, "ch": channel, "t": INTENT},
        )
        conn.execute(
            sa.text("insert into alert_log values (:k, :t, 'ready', 'sending', 'attempt 1')"),
            {"k": key, "t": INTENT},
        )


def _row(engine, key: str = "evt-1") -> dict[str, Any]:
    with engine.begin() as conn:
        return dict(
            conn.execute(sa.text("select * from alerts where alert_key = :k"), {"k": key})
            .mappings()
            .one()
        )


def _settle(engine, client: Lookups, at: datetime):
    settings = load_settings(alerts={"lookup_delay_seconds": DELAY, "lookup_margin_seconds": 60})
    return settle_unknown(
        engine,
        client,
        alerts=settings.alerts,
        genesys=settings.genesys,
        now=at,  # type: ignore[arg-type]
    )


def test_found_is_recorded_with_its_ids(engine) -> None:
    _unknown(engine)
    client = Lookups(SmsLookup(matches=[{"conversationId": "c9", "id": "m9"}], candidates=1))
    assert _settle(engine, client, INTENT + timedelta(seconds=5)).found == 1
    row = _row(engine)
    assert (row["state"], row["genesys_message_id"], row["genesys_conversation_id"]) == (
        "accepted",
        "m9",
        "c9",
    )
    to, text, start, end = client.asked[0]
    assert (to, text) == ("+13175550001", "body of evt-1")
    assert start == INTENT - timedelta(seconds=60)
    assert end == INTENT + timedelta(seconds=65)


def test_not_found_waits_for_the_delay_then_resends_once_then_holds(engine) -> None:
    _unknown(engine)
    nothing = SmsLookup()
    client = Lookups(nothing, nothing, nothing)
    early = _settle(engine, client, INTENT + timedelta(seconds=30))
    assert early.waiting == 1
    assert _row(engine)["state"] == "unknown"
    assert _row(engine)["next_attempt_at_utc"] == INTENT + timedelta(seconds=DELAY)
    # not due again before the delay has passed: no lookup at all
    assert _settle(engine, client, INTENT + timedelta(seconds=60)).waiting == 0
    assert len(client.asked) == 1
    late = _settle(engine, client, INTENT + timedelta(seconds=DELAY))
    assert late.resent == 1
    assert _row(engine)["state"] == "ready"
    # the resend's outcome is unknown too, and the lookup again finds nothing: no third send
    with engine.begin() as conn:
        conn.execute(sa.text("update alerts set state = 'unknown' where alert_key = 'evt-1'"))
        conn.execute(
            sa.text("insert into alert_log values ('evt-1', :t, 'ready', 'sending', 'attempt 2')"),
            {"t": INTENT + timedelta(seconds=DELAY)},
        )
    final = _settle(engine, client, INTENT + timedelta(seconds=3 * DELAY))
    assert final.review == 1
    assert _row(engine)["state"] == "review"
    assert unsettled_report(engine)["alert_key"].to_list() == ["evt-1"]


@pytest.mark.parametrize(
    "answer",
    [
        SmsLookup(matches=[{"conversationId": "a", "id": "1"}, {"conversationId": "b", "id": "2"}]),
        SmsLookup(candidates=1, unreadable=1),
    ],
    ids=["two-matches", "unreadable"],
)
def test_ambiguous_is_held_for_review_never_guessed(engine, answer: SmsLookup) -> None:
    _unknown(engine)
    assert _settle(engine, Lookups(answer), INTENT + timedelta(seconds=DELAY * 2)).review == 1
    row = _row(engine)
    assert row["state"] == "review"
    assert row["genesys_message_id"] is None


def test_a_failing_lookup_leaves_it_unknown_and_an_email_goes_to_review(engine) -> None:
    _unknown(engine)
    _unknown(engine, "evt-mail", channel="email")
    client = Lookups(TransientServerError(503))
    out = _settle(engine, client, INTENT + timedelta(seconds=DELAY * 2))
    assert (out.errors, out.review) == (1, 1)
    assert _row(engine)["state"] == "unknown"
    assert _row(engine, "evt-mail")["state"] == "review"
    assert len(client.asked) == 1  # no lookup for the e-mail
