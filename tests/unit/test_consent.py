import polars as pl
import pytest

from tasks.consent import channel_allowed, consent_state
from tasks.normalize import normalize_consent
from tests import factories as f


def _state(events: list[dict]) -> dict:
    raw = f.frame("consent_events", events).with_row_index("source_row")
    accepted, _ = normalize_consent(raw, pl.Series(["C1"]))
    rows = consent_state(accepted).to_dicts()
    return rows[0] if rows else {}


@pytest.mark.parametrize(
    ("events", "sms", "email", "global_out"),
    [
        ([("sms", "opt_in", "01")], "opt_in", None, False),
        ([("sms", "opt_in", "01"), ("sms", "opt_out", "02")], "opt_out", None, True),
        ([("sms", "opt_out", "01"), ("sms", "opt_in", "02")], "opt_in", None, False),
        ([("sms", "opt_in", "02"), ("sms", "opt_out", "02")], "opt_out", None, True),
        ([("sms", "opt_out", "02"), ("sms", "opt_in", "02")], "opt_out", None, True),
        ([("email", "opt_in", "01"), ("sms", "opt_out", "02")], "opt_out", "opt_in", True),
        ([("all", "opt_in", "01"), ("email", "opt_out", "02")], "opt_in", "opt_out", True),
        (
            [("sms", "opt_in", "01"), ("all", "opt_out", "03"), ("sms", "opt_in", "04")],
            "opt_in",
            "opt_out",
            True,
        ),
    ],
    ids=[
        "single-opt-in",
        "later-opt-out-wins",
        "re-opt-in-after-stop",
        "same-timestamp-opt-out-wins",
        "same-timestamp-opt-out-wins-either-order",
        "sms-stop-is-global",
        "email-unsubscribe-is-global",
        "start-on-sms-leaves-email-opted-out",
    ],
)
def test_latest_event_per_channel_and_global_opt_out(events, sms, email, global_out) -> None:
    rows = [
        f.consent("C1", channel, status, occurred_at=f"2026-01-{day}T00:00:00Z")
        for channel, status, day in events
    ]
    state = _state(rows)
    assert (state["sms_status"], state["email_status"], state["global_opt_out"]) == (
        sms,
        email,
        global_out,
    )


@pytest.mark.parametrize(
    ("sms", "email", "global_out", "requires", "expected"),
    [
        (None, None, None, False, {"sms": False, "email": True}),
        (None, None, None, True, {"sms": False, "email": False}),
        ("opt_in", "opt_in", False, True, {"sms": True, "email": True}),
        ("opt_in", None, True, False, {"sms": False, "email": False}),
    ],
    ids=[
        "no-events-email-needs-no-opt-in",
        "email-configured-to-need-opt-in",
        "both-opted-in",
        "global-opt-out",
    ],
)
def test_channel_allowed(sms, email, global_out, requires, expected) -> None:
    frame = pl.DataFrame(
        {"sms_status": [sms], "email_status": [email], "global_opt_out": [global_out]},
        schema={"sms_status": pl.String, "email_status": pl.String, "global_opt_out": pl.Boolean},
    )
    got = frame.select(
        channel_allowed("sms", email_requires_opt_in=requires).alias("sms"),
        channel_allowed("email", email_requires_opt_in=requires).alias("email"),
    ).to_dicts()[0]
    assert {k: bool(v) for k, v in got.items()} == expected
