import json
from datetime import UTC, datetime

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.consent import CONSENT_SCHEMA, channel_allowed, consent_state
from tasks.eligibility import PRIOR_SCHEMA, decide
from tasks.normalize import normalize, normalize_consent
from tasks.settings import CadenceSettings, WindowSettings
from tests import factories as f

AS_OF = datetime(2026, 11, 23, 6, 0)


def _normalized(events: list[dict], *, as_of: datetime | None = AS_OF):
    customer = f.customer(customer_id="C1")
    return normalize(f.extracted([customer], [], events), as_of=as_of)


def _state(events: list[dict], *, as_of: datetime | None = AS_OF) -> dict:
    n = _normalized(events, as_of=as_of)
    rows = consent_state(n.consent_events, as_of=as_of, unclear=n.consent_unclear).to_dicts()
    return rows[0] if rows else {}


def _events(spec: list[tuple[str | None, str | None, str]]) -> list[dict]:
    return [
        f.consent("C1", channel, status, occurred_at=f"2026-01-{day}T00:00:00Z")
        for channel, status, day in spec
    ]


def _summary(state: dict) -> tuple:
    return (state["sms_status"], state["email_status"], state["global_opt_out"])


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
        # same instant, different spellings, channel all: the opt-out wins on both channels
        ([("ALL", "Opt-In", "05"), ("all_channels", "STOP", "05")], "opt_out", "opt_out", True),
        ([("*", "unsubscribe", "05"), ("any", "subscribed", "05")], "opt_out", "opt_out", True),
        # an opt-out on a channel this pipeline does not send on is global and holds until
        # a later event on that same channel name, whatever happens on sms / e-mail / all
        (
            [
                ("whatsapp", "opt_out", "01"),
                ("sms", "opt_in", "02"),
                ("email", "opt_in", "03"),
                ("all", "opt_in", "04"),
            ],
            "opt_in",
            "opt_in",
            True,
        ),
        (
            [("WhatsApp", "opt_out", "01"), ("sms", "opt_in", "02"), ("whats_app", "yes", "03")],
            "opt_in",
            None,
            False,
        ),
        ([("voice", "opt_in", "01")], None, None, False),
        ([("Text Message", "opt_in", "01"), ("sms", "opt_out", "01")], "opt_out", None, True),
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
        "same-instant-all-spellings-opt-out-wins",
        "same-instant-all-aliases-opt-out-wins",
        "unknown-channel-opt-out-blocks-until-that-channel-opts-in",
        "unknown-channel-re-opt-in-lifts-its-own-opt-out",
        "unknown-channel-opt-in-grants-nothing",
        "unknown-channel-opt-in-is-not-sms",
    ],
)
def test_latest_event_per_channel_and_global_opt_out(events, sms, email, global_out) -> None:
    state = _state(_events(events))
    assert _summary(state) == (sms, email, global_out)
    assert state["consent_unclear"] is False


@pytest.mark.parametrize(
    ("channel", "sms", "email"),
    [
        ("sms", "opt_in", None),
        (" SMS ", "opt_in", None),
        ("text", "opt_in", None),
        ("TXT", "opt_in", None),
        ("sms/text", "opt_in", None),
        ("SMS / Text", "opt_in", None),
        ("email", None, "opt_in"),
        ("E-Mail", None, "opt_in"),
        ("e_mail", None, "opt_in"),
        ("mail", None, "opt_in"),
        ("all", "opt_in", "opt_in"),
        ("Any", "opt_in", "opt_in"),
        ("*", "opt_in", "opt_in"),
        ("all_channels", "opt_in", "opt_in"),
        ("All-Channels", "opt_in", "opt_in"),
    ],
)
def test_channel_spellings(channel, sms, email) -> None:
    state = _state(_events([(channel, "opt_in", "01")]))
    assert _summary(state) == (sms, email, False)


@pytest.mark.parametrize(
    "channel", ["whatsapp", "voice", "push", "phone", "Text Message", " Push-Notification "]
)
def test_opt_out_on_any_unknown_channel_is_global(channel) -> None:
    events = _events([("sms", "opt_in", "01"), ("email", "opt_in", "02"), (channel, "STOP", "03")])
    n = _normalized(events)
    assert n.quarantine.height == 0  # an unknown channel name is read, not rejected
    state = consent_state(n.consent_events, as_of=AS_OF, unclear=n.consent_unclear).to_dicts()[0]
    assert _summary(state) == ("opt_in", "opt_in", True)
    assert state["opted_out_at"] == datetime(2026, 1, 3)
    allowed = pl.DataFrame([state], schema=CONSENT_SCHEMA).select(
        channel_allowed("sms", email_requires_opt_in=False).alias("sms"),
        channel_allowed("email", email_requires_opt_in=False).alias("email"),
    )
    assert allowed.rows() == [(False, False)]


OPT_OUT_SPELLINGS = [
    "opt_out", "opt-out", "OPT OUT", "optout", "opted_out", "unsubscribe", "unsubscribed",
    "stop", "revoke", "revoked", "withdraw", "withdrawn", "out", "no",
    " Opt.Out ", "STOP!", "Opted-Out",
]  # fmt: skip
OPT_IN_SPELLINGS = [
    "opt_in", "opt-in", "optin", "opted_in", "subscribe", "subscribed", "start", "unstop",
    "yes", "in", "OPT IN", " Yes. ", "Opted-In",
]  # fmt: skip


@pytest.mark.parametrize("status", OPT_OUT_SPELLINGS)
def test_opt_out_spellings(status) -> None:
    events = _events([("sms", "opt_in", "01"), ("sms", status, "02")])
    assert _summary(_state(events)) == ("opt_out", None, True)


@pytest.mark.parametrize("status", OPT_IN_SPELLINGS)
def test_opt_in_spellings(status) -> None:
    events = _events([("sms", "opt_out", "01"), ("sms", status, "02")])
    assert _summary(_state(events)) == ("opt_in", None, False)


@pytest.mark.parametrize(
    ("values", "rule"),
    [
        ({"status": "maybe"}, "consent_status_unknown"),
        ({"status": "opt_outt"}, "consent_status_unknown"),
        ({"status": ""}, "consent_status_unknown"),
        ({"status": None}, "consent_status_unknown"),
        ({"channel": None}, "channel_unknown"),
        ({"channel": "   "}, "channel_unknown"),
        ({"channel": "-_-"}, "channel_unknown"),
        ({"occurred_at": "yesterday"}, "occurred_at_invalid"),
        ({"occurred_at": None}, "occurred_at_invalid"),
    ],
)
def test_unreadable_row_is_quarantined_and_makes_consent_unclear(values, rule) -> None:
    good = f.consent("C1", "sms", "opt_in", occurred_at="2026-01-01T00:00:00Z")
    bad = f.consent("C1", "email", "opt_in", occurred_at="2026-01-02T00:00:00Z") | values
    n = _normalized([good, bad])
    rows = n.quarantine.filter(pl.col("scope") == "row")
    assert rows.select("source", "source_row", "record_key", "rule").rows() == [
        ("consent_events", 1, "C1", rule)
    ]
    raw = json.loads(rows["raw_values"][0])
    assert {k: raw[k] for k in values} == values
    assert n.consent_events["source_row"].to_list() == [0]
    assert n.consent_unclear["customer_id"].to_list() == ["C1"]
    state = consent_state(n.consent_events, as_of=AS_OF, unclear=n.consent_unclear).to_dicts()
    assert [(s["customer_id"], s["sms_status"], s["consent_unclear"]) for s in state] == [
        ("C1", "opt_in", True)
    ]
    allowed = pl.DataFrame(state, schema=CONSENT_SCHEMA).select(
        channel_allowed("sms", email_requires_opt_in=False),
        channel_allowed("email", email_requires_opt_in=False).alias("email"),
    )
    assert allowed.rows() == [(False, False)]


def test_unclear_customer_without_readable_events_still_gets_a_state_row() -> None:
    n = _normalized([f.consent("C1", "sms", "perhaps")])
    assert n.consent_events.height == 0
    state = consent_state(n.consent_events, unclear=n.consent_unclear)
    assert state.select("customer_id", "global_opt_out", "consent_unclear").rows() == [
        ("C1", False, True)
    ]


def test_unreadable_row_of_an_unknown_customer_affects_nobody() -> None:
    events = [f.consent("C1", "sms"), f.consent("NOBODY", "sms", "perhaps")]
    n = _normalized(events)
    assert n.quarantine.select("record_key", "rule").rows() == [("NOBODY", "customer_unknown")]
    assert n.consent_unclear.height == 0
    assert consent_state(n.consent_events, unclear=n.consent_unclear)[
        "consent_unclear"
    ].to_list() == [False]


@pytest.mark.parametrize(
    ("events", "sms", "global_out", "notes"),
    [
        (
            [("sms", "opt_in", "2026-11-23T06:00:01Z")],
            None,
            False,
            [(0, "consent_in_future", "opt-in dated after the run: ignored")],
        ),
        (
            [("sms", "opt_out", "2026-11-01T00:00:00Z"), ("sms", "opt_in", "2027-01-01T00:00:00Z")],
            "opt_out",
            True,
            [(1, "consent_in_future", "opt-in dated after the run: ignored")],
        ),
        (
            [("sms", "opt_in", "2026-11-01T00:00:00Z"), ("sms", "stop", "2026-12-24T00:00:00Z")],
            "opt_out",
            True,
            [(1, "consent_in_future", "opt-out dated after the run: counted as an opt-out now")],
        ),
        (
            [("sms", "opt_in", "2026-11-23T06:00:00Z")],
            "opt_in",
            False,
            [],
        ),
        (
            [("sms", "opt_in", "2026-11-23T07:00:00+02:00")],
            "opt_in",
            False,
            [],
        ),
    ],
    ids=[
        "future-opt-in-ignored",
        "future-opt-in-does-not-lift-an-opt-out",
        "future-opt-out-counts-now",
        "opt-in-at-as-of-counts",
        "offset-converted-before-comparing",
    ],
)
def test_events_after_as_of(events, sms, global_out, notes) -> None:
    rows = [f.consent("C1", ch, st, occurred_at=at) for ch, st, at in events]
    n = _normalized(rows)
    assert n.consent_events.height == len(rows)  # noted, never dropped: rows stay accounted
    q = n.quarantine
    assert q.filter(pl.col("scope") == "row").height == 0
    assert q.select("source_row", "rule", "reason").rows() == notes
    assert set(q["scope"].to_list()) <= {"field"}
    state = consent_state(n.consent_events, as_of=AS_OF, unclear=n.consent_unclear).to_dicts()
    # no row at all means no counted event (the same as a customer without events)
    got = (state[0]["sms_status"], state[0]["global_opt_out"]) if state else (None, False)
    assert got == (sms, global_out)


def test_consent_state_ignores_future_opt_ins_by_as_of_alone() -> None:
    accepted, _ = normalize_consent(
        f.frame(
            "consent_events", [f.consent("C1", "sms", occurred_at="2026-12-01T00:00:00Z")]
        ).with_row_index("source_row"),
        pl.Series(["C1"]),
    )  # normalized without an as-of: nothing flagged
    assert accepted["after_as_of"].to_list() == [False]
    assert consent_state(accepted)["sms_status"].to_list() == ["opt_in"]
    for as_of in (AS_OF, AS_OF.replace(tzinfo=UTC)):
        assert consent_state(accepted, as_of=as_of).height == 0


@pytest.mark.parametrize(
    ("sms", "email", "global_out", "unclear", "requires", "expected"),
    [
        (None, None, None, None, False, {"sms": False, "email": True}),
        (None, None, None, None, True, {"sms": False, "email": False}),
        ("opt_in", "opt_in", False, False, True, {"sms": True, "email": True}),
        ("opt_in", None, True, False, False, {"sms": False, "email": False}),
        ("opt_in", "opt_in", False, True, False, {"sms": False, "email": False}),
        ("opt_in", "opt_in", False, True, True, {"sms": False, "email": False}),
    ],
    ids=[
        "no-events-email-needs-no-opt-in",
        "email-configured-to-need-opt-in",
        "both-opted-in",
        "global-opt-out",
        "unclear-blocks-everything",
        "unclear-blocks-everything-with-opt-in-required",
    ],
)
def test_channel_allowed(sms, email, global_out, unclear, requires, expected) -> None:
    frame = pl.DataFrame(
        {
            "sms_status": [sms],
            "email_status": [email],
            "global_opt_out": [global_out],
            "consent_unclear": [unclear],
        },
        schema={
            "sms_status": pl.String,
            "email_status": pl.String,
            "global_opt_out": pl.Boolean,
            "consent_unclear": pl.Boolean,
        },
    )
    got = frame.select(
        channel_allowed("sms", email_requires_opt_in=requires).alias("sms"),
        channel_allowed("email", email_requires_opt_in=requires).alias("email"),
    ).to_dicts()[0]
    assert {k: bool(v) for k, v in got.items()} == expected


# --- property: arbitrary channel / status text never crashes and never plans unclear consent

NAMED_CHANNELS = ["sms", "Text", "E-Mail", "all", "*", "whatsapp", "Voice", "push", "phone"]
BLANK_CHANNELS = ["", " ", "\t", "-", "_ -"]
JUNK_STATUSES = ["", "maybe", "0", "n/a", "opt_outt", "???", "optout?in"]
PAST, FUTURE = "2026-06-01T00:00:00Z", "2027-01-01T00:00:00Z"
TIMES = [PAST, FUTURE, "junk", None]
PEOPLE = ["C1", "C2", "C3", "NOBODY"]

_event = st.tuples(
    st.sampled_from(PEOPLE),
    st.one_of(st.none(), st.text(max_size=12), st.sampled_from(NAMED_CHANNELS + BLANK_CHANNELS)),
    st.one_of(
        st.none(),
        st.text(max_size=12),
        st.sampled_from(OPT_OUT_SPELLINGS + OPT_IN_SPELLINGS + JUNK_STATUSES),
    ),
    st.sampled_from(TIMES),
)


def _surely_unreadable(channel: str | None, status: str | None, at: str | None) -> bool:
    return (
        channel in BLANK_CHANNELS
        or channel is None
        or status is None
        or (status in JUNK_STATUSES)
        or at not in (PAST, FUTURE)
    )


def _surely_opted_out(channel: str | None, status: str | None, at: str | None) -> bool:
    return channel in NAMED_CHANNELS and status in OPT_OUT_SPELLINGS and at in (PAST, FUTURE)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_event, max_size=10))
def test_arbitrary_consent_text_never_crashes_and_unclear_is_never_planned(drawn) -> None:
    people = ["C0", "C1", "C2", "C3"]  # C0 gets no drawn event: the control
    customers = [
        f.customer(customer_id=c, phone=f"+1 212 555 01{i:02d}", email=f"{c}@example.com")
        for i, c in enumerate(people)
    ]
    invoices = [f.invoice(c, invoice_id=f"I-{c}", due_date="2026-11-24") for c in people]
    base = [
        f.consent(c, ch, "opt_in", occurred_at="2026-01-01T00:00:00Z")
        for c in people
        for ch in ("sms", "email")
    ]
    extra = [
        {"customer_id": c, "channel": ch, "status": s, "source": "crm", "occurred_at": at}
        for c, ch, s, at in drawn
    ]
    events = base + extra
    n = normalize(f.extracted(customers, invoices, events), as_of=AS_OF)
    assert n.consent_events.height + n.quarantined_rows("consent_events") == len(events)
    state = consent_state(n.consent_events, as_of=AS_OF, unclear=n.consent_unclear)
    decisions = decide(
        n.invoices,
        n.customers,
        state,
        n.contact_history,
        pl.DataFrame(schema=PRIOR_SCHEMA),
        as_of=AS_OF,
        cadence=CadenceSettings(),
        window=WindowSettings(),
    )
    assert decisions.height == len(invoices) * 2
    planned = set(decisions.filter(pl.col("status") == "planned")["customer_id"].to_list())
    assert "C0" in planned  # the control is planned, so "never planned" below is not vacuous
    flagged = set(n.consent_unclear["customer_id"].to_list())
    unreadable = {c for c, ch, s, at in drawn if c != "NOBODY" and _surely_unreadable(ch, s, at)}
    opted_out = {c for c, ch, s, at in drawn if c != "NOBODY" and _surely_opted_out(ch, s, at)}
    assert unreadable <= flagged
    assert "NOBODY" not in flagged
    assert not planned & flagged
    assert not planned & opted_out
    reasons = dict(
        decisions.filter(pl.col("customer_id").is_in(list(flagged)))
        .group_by("reason")
        .len()
        .iter_rows()
    )
    assert set(reasons) <= {"consent_unclear"}
