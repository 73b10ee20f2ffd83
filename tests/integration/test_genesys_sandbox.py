"""The product's Genesys client and push against the bundled sandbox over real HTTP.

With ``GENESYS_TEST_ORG=1`` (see ``tests/genesys_target.py``) the tests that drive only the
client run against a real Genesys Cloud org instead, under a ``reminders-test-<uuid>`` prefix
that is deleted afterwards; every test that needs the sandbox's admin endpoints is skipped.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import httpx
import polars as pl
import pytest

from genesys_sandbox.app import create_app
from genesys_sandbox.config import SandboxConfig
from genesys_sandbox.testing import serve
from tasks.genesys import OutcomeUnknown, RequestRejected, client_from_settings
from tasks.outbox import MESSAGE_COLUMNS
from tasks.push import push_waves_to_genesys
from tasks.settings import CadenceSettings, GenesysSettings, WindowSettings
from tasks.warehouse import make_engine, migrate, read_frame, write_frame
from tests.genesys_target import SANDBOX_ONLY_REASON, Target, cleanup, target_from_env

NOW = datetime(2026, 11, 23, 13, 0)

# The behaviours no public source settles, read both ways (BEHAVIOUR.md "Switches"): the
# client must be correct under each. "hard": the sandbox defaults (skip outside the window,
# recycle on exhaustion, a re-add re-contacts, deletes of contacts in use are kept, official
# wrap-up codes). "soft": the sandbox's earlier readings (reschedule, never recycle, keep
# attempted, deletes go through, legacy codes; carrier failures as FAILED).
SANDBOX_CONFIGS: dict[str, dict] = {
    "hard": {
        "outside_window": "skip",
        "readd_requeued": "recontact",
        "donotqueue_new": "no_effect",
        "recycle": "on_exhaustion",
        "delete_in_use": "keep",
        "in_use_scope": "any_campaign",
        "wrapup_codes": "official",
        "carrier_failure_wrapup": "sent",
        "unknown_wrapup_rate": 0.0,
        "max_contacts_per_list": 1_000_000,
    },
    "soft": {
        "outside_window": "reschedule",
        "readd_requeued": "keep_attempted",
        "donotqueue_new": "wait_for_recycle",
        "recycle": "never",
        "delete_in_use": "delete",
        "in_use_scope": "running_campaign",
        "wrapup_codes": "legacy",
        "carrier_failure_wrapup": "failed",
        "unknown_wrapup_rate": 0.0,
        "max_contacts_per_list": 1_000_000,
    },
}


def configure(sandbox: str, name: str, **extra) -> dict:
    httpx.post(f"{sandbox}/sandbox/reset").raise_for_status()
    httpx.put(f"{sandbox}/sandbox/faults", json={}).raise_for_status()
    answer = httpx.put(f"{sandbox}/sandbox/config", json=SANDBOX_CONFIGS[name] | extra)
    answer.raise_for_status()
    return answer.json()


REAL_ORG = target_from_env().real


@pytest.fixture(scope="module")
def sandbox():
    if REAL_ORG:
        pytest.skip(SANDBOX_ONLY_REASON)
    with serve(create_app(SandboxConfig(rate_limit_per_minute=100_000))) as url:
        yield url


@pytest.fixture(scope="module")
def target(request) -> Target:
    """The sandbox, or (``GENESYS_TEST_ORG=1``) a real org whose test objects are deleted
    when the module is done."""
    if not REAL_ORG:
        yield target_from_env({}, sandbox_url=request.getfixturevalue("sandbox"))
        return
    real = target_from_env()
    yield real
    with client_from_settings(real.settings, real.secret) as c:
        cleanup(c, real.prefix)


@pytest.fixture(params=sorted(SANDBOX_CONFIGS))
def reading(request, sandbox) -> str:
    configure(sandbox, request.param)
    return request.param


@pytest.fixture
def client(target, request):
    if not target.real:
        configure(request.getfixturevalue("sandbox"), "hard")
    with client_from_settings(target.settings, target.secret) as c:
        yield c


def _contact(key: str, phone: str, text: str = "Hi") -> dict:
    return {"id": key, "data": {"Phone": phone, "Message": text, "TimeZone": "America/New_York"}}


def test_contact_list_lifecycle_and_contacts(client, target, request) -> None:
    name = target.name("cl-1")
    created = client.create_contact_list(
        name, ["Phone", "Message", "TimeZone"], phone_columns=[("Phone", "TimeZone")]
    )
    assert client.find_contact_list(name)["id"] == created["id"]
    assert client.get_contact_list(created["id"])["columnNames"] == ["Phone", "Message", "TimeZone"]
    contacts = [_contact(f"k{i}", f"+1317555{i:04d}") for i in range(1000)]
    assert len(client.add_contacts(created["id"], contacts)) == 1000
    assert len(client.add_contacts(created["id"], contacts[:10])) == 10
    assert {c["id"] for c in client.get_contacts(created["id"], ["k1", "k2", "missing"])} == {
        "k1",
        "k2",
    }
    client.update_contact(created["id"], _contact("k1", "+13175550001", "Changed"))
    client.delete_contacts(created["id"], ["k2", "k3"])
    assert {c["id"] for c in client.get_contacts(created["id"], ["k1", "k2", "k3"])} == {"k1"}
    rows = client.export_contact_list(created["id"], poll_seconds=0.05 if not target.real else 2)
    assert len(rows) == 998
    if not target.real:
        # the file came from the signed URL on the other loopback name, and without the token
        stats = httpx.get(f"{request.getfixturevalue('sandbox')}/sandbox/stats").json()
        assert (stats["signed_downloads"], stats["signed_download_with_authorization"]) == (1, 0)
    assert next(r for r in rows if r["inin-outbound-id"] == "k1")["Message"] == "Changed"
    client.delete_contact_list(created["id"])
    assert client.find_contact_list(name) is None


def test_limits_come_back_as_permanent_errors_with_genesys_codes(client, target) -> None:
    with pytest.raises(RequestRejected) as too_many_columns:
        client.create_contact_list(target.name("wide"), [f"c{i}" for i in range(51)])
    assert too_many_columns.value.status == 400
    created = client.create_contact_list(
        target.name("cl-2"), ["Phone", "Message"], phone_columns=[("Phone", None)]
    )
    with pytest.raises(RequestRejected) as bad_cell:
        client.add_contacts(
            created["id"],
            [
                _contact("x", "+13175550000", "y" * 600)
                | {"data": {"Phone": "+1", "Message": "y" * 600}}
            ],
        )
    assert (bad_cell.value.status, bad_cell.value.code) == (400, "invalid.value")
    with pytest.raises(RequestRejected) as long_sms:
        client.send_agentless_sms(target.settings.sms_sender, "+13175550123", "x" * 766)
    assert long_sms.value.status == 400


def test_dnc_campaign_and_agentless(client, sandbox) -> None:
    dnc = client.create_dnc_list("reminders-dnc", "Any")
    client.add_dnc_phone_numbers(dnc["id"], ["+13175550002"])
    client.add_dnc_email_addresses(dnc["id"], ["stop@example.com"])
    contact_list = client.create_contact_list(
        "cl-3", ["Phone", "Message", "TimeZone"], phone_columns=[("Phone", "TimeZone")]
    )
    client.add_contacts(
        contact_list["id"], [_contact("a", "+13175550001"), _contact("b", "+13175550002")]
    )
    time_set = client.ensure_callable_time_set(
        "window", ["America/New_York"], "08:00:00", "16:00:00"
    )
    assert (
        client.ensure_callable_time_set("window", ["America/New_York"], "08:00:00", "16:00:00")[
            "id"
        ]
        == time_set["id"]
    )
    grown = client.ensure_callable_time_set(
        "window", ["America/New_York", "Asia/Kolkata"], "08:00:00", "16:00:00"
    )
    assert sorted(t["timeZoneId"] for t in grown["callableTimes"]) == [
        "America/New_York",
        "Asia/Kolkata",
    ]
    campaign = client.create_messaging_campaign(
        {
            "name": "c-3",
            "contactList": {"id": contact_list["id"]},
            "callableTimeSet": {"id": time_set["id"]},
            "dncLists": [{"id": dnc["id"]}],
            "messagesPerMinute": 10,
            "campaignStatus": "off",
            "smsConfig": {
                "phoneColumn": "Phone",
                "messageColumn": "Message",
                "senderSmsPhoneNumber": {"phoneNumber": "+13175550100"},
            },
        }
    )
    # turned on once the window is open (a contact reached outside it is skipped this pass)
    _run(sandbox, NOW)
    assert client.set_campaign_status(campaign["id"], "on")["campaignStatus"] == "on"
    httpx.post(f"{sandbox}/sandbox/run", json={"until": "2026-11-23T14:00:00Z"}).raise_for_status()
    progress = client.campaign_progress(campaign["id"])
    assert progress["numberOfContactsMessaged"] == 1
    assert client.set_campaign_status(campaign["id"], "off")["campaignStatus"] == "off"
    sent = client.send_agentless_sms("+13175550100", "+13175550123", "Payment received, thank you.")
    status = client.get_message(sent["conversationId"], sent["id"])
    assert status["status"] in {"queued", "sent", "delivery-success", "delivery-failed"}


def test_dropped_connection_on_a_non_idempotent_send_is_reported_not_replayed(
    client, sandbox
) -> None:
    httpx.put(f"{sandbox}/sandbox/faults", json={"drop_after_commit_rate": 1.0}).raise_for_status()
    try:
        with pytest.raises(OutcomeUnknown):
            client.send_agentless_sms("+13175550100", "+13175550123", "once")
    finally:
        httpx.put(
            f"{sandbox}/sandbox/faults", json={"drop_after_commit_rate": 0.0}
        ).raise_for_status()
    ledger = httpx.get(f"{sandbox}/sandbox/ledger").json()
    assert [m["body"] for m in ledger["messages"]] == ["once"]


def _outbox(n: int, overrides: dict[int, dict] | None = None) -> pl.DataFrame:
    overrides = overrides or {}
    rows = []
    for i in range(n):
        rows.append(
            {
                "message_key": f"key{i:05d}",
                "customer_id": f"C{i}",
                "channel": "sms",
                "local_send_date": date(2026, 11, 23),
                "time_zone": "America/New_York",
                "candidate_zones": "America/New_York",
                "send_at_local": NOW,
                "send_at_local_by_zone": f"America/New_York {NOW:%Y-%m-%d %H:%M}",
                "send_at_utc": NOW,
                "window_start_utc": NOW - timedelta(hours=1),
                "window_end_utc": NOW + timedelta(hours=2),
                "wave_id": "sms:America/New_York:2026-11-23:01",
                "slot": 1,
                "wave_start_utc": NOW - timedelta(minutes=5),
                "to_address": f"+1317555{i:04d}",
                "template": "sms_upcoming",
                "subject": None,
                "body": "Reminder",
                "encoding": "GSM-7",
                "segments": 1,
                "units": 8,
                "invoice_ids": f"I{i}",
                "invoice_count": 1,
                "cadence_step": -1,
                "amount_total_minor": 100,
                "currency": "USD",
                "link_token": "t",
                "template_values": None,
                "state": "ready",
                "state_reason": None,
                "first_run_id": "b",
                "last_run_id": "b",
                "created_at_utc": NOW,
                "updated_at_utc": NOW,
            }
            | overrides.get(i, {})
        )
    return pl.DataFrame(rows).select(MESSAGE_COLUMNS)


def _push(tmp_path, sandbox, frame, **genesys):
    engine = make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    migrate(engine)
    with engine.begin() as conn:
        write_frame(conn, "messages", frame)
    settings = GenesysSettings(
        base_url=sandbox, client_id="sandbox-client", push_batch_size=10, **genesys
    )
    with client_from_settings(settings, "sandbox-secret") as client:
        result = push_waves_to_genesys(
            engine,
            client,
            genesys=settings,
            window=WindowSettings(),
            cadence=CadenceSettings(),
            now=NOW,
            horizon=timedelta(hours=1),
            run_id="p",
        )
    with engine.connect() as conn:
        states = read_frame(
            conn, "select message_key, state, genesys_error_code from messages order by message_key"
        )
    engine.dispose()
    return result, states


def test_refused_contacts_are_isolated_and_recorded_with_the_code(
    client, sandbox, tmp_path
) -> None:
    frame = _outbox(25, {7: {"body": "x" * 600}, 19: {"body": "y" * 600}})
    result, states = _push(tmp_path, sandbox, frame)
    assert (result.pushed, result.rejected) == (23, 2)
    rejected = states.filter(pl.col("state") == "rejected")
    assert rejected.rows() == [
        ("key00007", "rejected", "400:invalid.value"),
        ("key00019", "rejected", "400:invalid.value"),
    ]


def test_capacity_check_defers_what_cannot_go_out_before_the_window_closes(
    client, sandbox, tmp_path
) -> None:
    result, states = _push(tmp_path, sandbox, _outbox(150), messages_per_minute=1)
    assert result.pushed == 120
    assert result.deferred == 30
    assert dict(states.group_by("state").len().iter_rows()) == {"pushed": 120, "deferred": 30}


def test_global_opt_outs_are_synced_to_the_genesys_dnc_list_once(client, sandbox, tmp_path) -> None:
    from tasks.normalize import normalize
    from tests import factories as f

    stays = f.customer(customer_id="C0", phone="+1 317 555 0000")
    leaves = f.customer(customer_id="C1", phone="+1 317 555 0001", email="gone@example.com")
    fresh = normalize(
        f.extracted(
            [stays, leaves],
            [f.invoice("C0", invoice_id="I0"), f.invoice("C1", invoice_id="I1")],
            [
                f.consent("C0", "sms"),
                f.consent("C1", "sms"),
                f.consent("C1", "email", "opt_out", occurred_at="2026-11-23T05:00:00Z"),
            ],
        ),
        as_of=NOW,
    )
    frame = _outbox(2, {1: {"customer_id": "C1", "invoice_ids": "I1"}}).with_columns(
        pl.Series("customer_id", ["C0", "C1"]), pl.Series("invoice_ids", ["I0", "I1"])
    )
    engine = make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    migrate(engine)
    with engine.begin() as conn:
        write_frame(conn, "messages", frame)
    settings = GenesysSettings(base_url=sandbox, client_id="sandbox-client")
    runs = []
    with client_from_settings(settings, "sandbox-secret") as c:
        for run in ("p1", "p2"):
            runs.append(
                push_waves_to_genesys(
                    engine,
                    c,
                    genesys=settings,
                    window=WindowSettings(),
                    cadence=CadenceSettings(),
                    now=NOW,
                    horizon=timedelta(hours=1),
                    run_id=run,
                    fresh=fresh,
                )
            )
        dnc = c.find_dnc_list("reminders-opt-outs")
        campaign = c.find_campaign("reminders-sms-13175550100")
    with engine.connect() as conn:
        entries = read_frame(conn, "select address, kind from dnc_entries order by kind")
        states = dict(
            read_frame(conn, "select message_key, state from messages order by message_key").rows()
        )
    engine.dispose()
    assert [r.dnc_added for r in runs] == [2, 0]
    assert entries.rows() == [("gone@example.com", "email"), ("+13175550001", "phone")]
    assert dnc["size"] == 2
    assert [ref["id"] for ref in campaign["dncLists"]] == [dnc["id"]]
    assert states == {"key00000": "pushed", "key00001": "cancelled"}


# --- issue 8: outcomes, never twice, cancelling, expiry, list rollover, under each reading ---


def _run(sandbox: str, until: datetime) -> None:
    until_iso = f"{until:%Y-%m-%dT%H:%M:%S}Z"
    httpx.post(f"{sandbox}/sandbox/run", json={"until": until_iso}).raise_for_status()


def _ledger_keys(sandbox: str) -> list[str]:
    ledger = httpx.get(f"{sandbox}/sandbox/ledger").json()
    return [m["contact_id"] for m in ledger["messages"] if m["source"] == "campaign"]


def _warehouse(tmp_path, frame: pl.DataFrame):
    engine = make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    migrate(engine)
    with engine.begin() as conn:
        write_frame(conn, "messages", frame)
    return engine


def _settings(sandbox: str, **genesys) -> GenesysSettings:
    return GenesysSettings(
        base_url=sandbox, client_id="sandbox-client", push_batch_size=10, **genesys
    )


def _push_at(engine, settings, now, *, fresh=None, run_id="p"):
    with client_from_settings(settings, "sandbox-secret") as c:
        return push_waves_to_genesys(
            engine,
            c,
            genesys=settings,
            window=WindowSettings(),
            cadence=CadenceSettings(),
            now=now,
            horizon=timedelta(minutes=15),
            run_id=run_id,
            fresh=fresh,
        )


def _collect(engine, settings, now, run_id="o"):
    from tasks.outcomes import collect_outcomes_from_genesys

    with client_from_settings(settings, "sandbox-secret") as c:
        return collect_outcomes_from_genesys(engine, c, settings, now=now, run_id=run_id)


def _states(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(read_frame(conn, "select message_key, state from messages").rows())


def _recycle_and_run(sandbox, settings, until) -> None:
    with client_from_settings(settings, "sandbox-secret") as c:
        campaign = c.find_campaign("reminders-sms-13175550100")
        c.recycle_campaign(campaign["id"])
        c.set_campaign_status(campaign["id"], "on")
    _run(sandbox, until)


def test_outcomes_are_wrapup_states_and_a_recycle_never_resends(reading, sandbox, tmp_path) -> None:
    _run(sandbox, NOW)
    engine = _warehouse(tmp_path, _outbox(12))
    settings = _settings(sandbox)
    assert _push_at(engine, settings, NOW).pushed == 12
    _run(sandbox, NOW + timedelta(hours=1))
    sent = _ledger_keys(sandbox)
    assert sorted(sent) == [f"key{i:05d}" for i in range(12)]
    counts = _collect(engine, settings, NOW + timedelta(hours=1))
    states = _states(engine)
    assert set(states.values()) <= {"sent", "failed"}
    assert counts["sent"] + counts["failed"] == 12
    assert "delivered" not in states.values()
    ledger = httpx.get(f"{sandbox}/sandbox/ledger").json()["messages"]
    handed_off = {m["contact_id"] for m in ledger if m["outcome"] == "delivered"}
    if reading == "hard":  # official codes; carrier failures do not change the wrap-up
        assert counts["sent"] == 12
    else:  # legacy codes, carrier failures FAILED: sent exactly for the delivered ones
        assert {k for k, v in states.items() if v == "sent"} == handed_off
    # every attempted contact is uncontactable (or gone): a recycle sends nothing more
    with client_from_settings(settings, "sandbox-secret") as c:
        list_id = c.find_campaign("reminders-sms-13175550100")["contactList"]["id"]
        left = c.get_contacts(list_id, list(states))
    from tasks.genesys import is_uncontactable

    assert all(is_uncontactable(contact) for contact in left)
    _recycle_and_run(sandbox, settings, NOW + timedelta(hours=3))
    assert sorted(_ledger_keys(sandbox)) == sorted(sent)


def test_unknown_wrapup_codes_are_kept_raw_and_counted_unknown_not_failed(
    sandbox, tmp_path
) -> None:
    configure(sandbox, "hard", unknown_wrapup_rate=1.0)
    _run(sandbox, NOW)
    engine = _warehouse(tmp_path, _outbox(6))
    settings = _settings(sandbox)
    _push_at(engine, settings, NOW)
    _run(sandbox, NOW + timedelta(hours=1))
    counts = _collect(engine, settings, NOW + timedelta(hours=1))
    assert (counts["unknown"], counts["failed"], counts["sent"]) == (6, 0, 0)
    with engine.connect() as conn:
        codes = read_frame(conn, "select genesys_wrapup_code from messages")
    assert all(c and c not in ("OUTBOUND-MESSAGE-SENT", "") for c in codes["genesys_wrapup_code"])


def _fresh_for(n: int, paid: set[int]):
    from tasks.normalize import normalize
    from tests import factories as f

    customers = [f.customer(customer_id=f"C{i}", phone=f"+1 317 555 {i:04d}") for i in range(n)]
    invoices = [
        f.invoice(
            f"C{i}",
            invoice_id=f"I{i}",
            status="paid" if i in paid else "open",
            amount_due="0.00" if i in paid else "10.00",
        )
        for i in range(n)
    ]
    consent = [f.consent(f"C{i}", "sms") for i in range(n)]
    return normalize(f.extracted(customers, invoices, consent), as_of=NOW)


def test_a_payer_cancelled_after_the_push_is_never_messaged(reading, sandbox, tmp_path) -> None:
    _run(sandbox, NOW)
    engine = _warehouse(tmp_path, _outbox(6))
    settings = _settings(sandbox)
    assert _push_at(engine, settings, NOW, fresh=_fresh_for(6, set())).pushed == 6
    # C2 pays before Genesys reached the contact; the next push re-checks
    result = _push_at(engine, settings, NOW, fresh=_fresh_for(6, {2}), run_id="p2")
    assert result.cancelled == {"sms:paid_since_planning": 1}
    assert _states(engine)["key00002"] == "cancelled"
    _run(sandbox, NOW + timedelta(hours=1))
    _recycle_and_run(sandbox, settings, NOW + timedelta(hours=3))
    sent = _ledger_keys(sandbox)
    assert "key00002" not in sent
    assert sorted(sent) == [f"key{i:05d}" for i in range(6) if i != 2]


def test_a_cancel_that_cannot_be_verified_stays_pending(sandbox, tmp_path, monkeypatch) -> None:
    configure(sandbox, "hard")
    _run(sandbox, NOW)
    engine = _warehouse(tmp_path, _outbox(3))
    settings = _settings(sandbox)
    _push_at(engine, settings, NOW, fresh=_fresh_for(3, set()))
    from tasks.genesys import GenesysClient

    monkeypatch.setattr(GenesysClient, "mark_uncontactable", lambda self, list_id, contacts: [])
    result = _push_at(engine, settings, NOW, fresh=_fresh_for(3, {1}), run_id="p2")
    assert result.cancel_pending == 1
    with engine.connect() as conn:
        row = read_frame(
            conn, "select state, state_reason from messages where message_key = 'key00001'"
        ).row(0)
    assert row == ("pushed", "cancel_pending")
    monkeypatch.undo()
    result = _push_at(engine, settings, NOW, fresh=_fresh_for(3, {1}), run_id="p3")
    assert result.cancelled == {"sms:paid_since_planning": 1}
    _run(sandbox, NOW + timedelta(hours=1))
    assert "key00001" not in _ledger_keys(sandbox)


def test_never_attempted_contacts_past_their_window_expire_uncontactable(
    reading, sandbox, tmp_path
) -> None:
    _run(sandbox, NOW)
    frame = _outbox(4)
    engine = _warehouse(tmp_path, frame)
    settings = _settings(sandbox)
    _push_at(engine, settings, NOW)
    # two windows end before Genesys gets to them (the sandbox clock has not moved)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "update messages set window_end_utc = timestamp '2026-11-23 13:00:00'"
            " where message_key in ('key00000', 'key00003')"
        )
    counts = _collect(engine, settings, NOW + timedelta(minutes=1))
    assert counts["expired"] == 2
    states = _states(engine)
    assert (states["key00000"], states["key00003"]) == ("expired", "expired")
    _run(sandbox, NOW + timedelta(hours=1))
    _recycle_and_run(sandbox, settings, NOW + timedelta(hours=3))
    assert sorted(_ledger_keys(sandbox)) == ["key00001", "key00002"]


def test_nothing_is_added_before_its_slot_opens(sandbox, tmp_path) -> None:
    configure(sandbox, "hard")
    _run(sandbox, NOW)
    later = NOW + timedelta(minutes=30)
    frame = _outbox(4, {2: {"wave_start_utc": later}, 3: {"wave_start_utc": later}})
    engine = _warehouse(tmp_path, frame)
    settings = _settings(sandbox)
    assert _push_at(engine, settings, NOW).pushed == 2
    states = _states(engine)
    assert (states["key00002"], states["key00003"]) == ("ready", "ready")
    _run(sandbox, later)
    assert _push_at(engine, settings, later, run_id="p2").pushed == 2


def test_lists_roll_over_and_every_contact_is_sent_once(reading, sandbox, tmp_path) -> None:
    configure(sandbox, reading, max_contacts_per_list=30)
    _run(sandbox, NOW)
    engine = _warehouse(tmp_path, _outbox(45))
    settings = _settings(sandbox, list_rollover_at=25)
    first = _push_at(engine, settings, NOW)
    assert (first.pushed, first.waiting_for_list) == (25, 20)
    _run(sandbox, NOW + timedelta(minutes=30))
    _collect(engine, settings, NOW + timedelta(minutes=30))
    second = _push_at(engine, settings, NOW + timedelta(minutes=30), run_id="p2")
    assert second.pushed == 20
    _run(sandbox, NOW + timedelta(hours=1))
    _collect(engine, settings, NOW + timedelta(hours=1), run_id="o2")
    _recycle_and_run(sandbox, settings, NOW + timedelta(hours=2))
    sent = _ledger_keys(sandbox)
    assert sorted(sent) == [f"key{i:05d}" for i in range(45)]
    assert set(_states(engine).values()) <= {"sent", "failed"}
    with client_from_settings(settings, "sandbox-secret") as c:
        campaign = c.find_campaign("reminders-sms-13175550100")
        lists = {c.get_contact_list(campaign["contactList"]["id"])["name"]}
        old = c.find_contact_list("reminders-sms-13175550100")
    if reading == "hard":  # deletes of contacts in use are kept: the list must roll over
        assert lists == {"reminders-sms-13175550100-2"}
        assert old is None


@pytest.mark.parametrize("point", ["push.after_rollover_list", "push.after_rollover_switch"])
def test_a_crash_during_rollover_is_finished_by_the_next_push(
    point, sandbox, tmp_path, monkeypatch
) -> None:
    configure(sandbox, "hard", max_contacts_per_list=30)
    _run(sandbox, NOW)
    engine = _warehouse(tmp_path, _outbox(45))
    settings = _settings(sandbox, list_rollover_at=25)
    _push_at(engine, settings, NOW)
    _run(sandbox, NOW + timedelta(minutes=30))
    _collect(engine, settings, NOW + timedelta(minutes=30))

    class Crash(Exception):
        pass

    def crash_at(name: str) -> None:
        if name == point:
            raise Crash(name)

    import tasks.push

    monkeypatch.setattr(tasks.push, "failpoint", crash_at)
    with pytest.raises(Crash):
        _push_at(engine, settings, NOW + timedelta(minutes=30), run_id="p2")
    monkeypatch.undo()
    assert _push_at(engine, settings, NOW + timedelta(minutes=30), run_id="p3").pushed == 20
    _run(sandbox, NOW + timedelta(hours=1))
    _recycle_and_run(sandbox, settings, NOW + timedelta(hours=2))
    assert sorted(_ledger_keys(sandbox)) == [f"key{i:05d}" for i in range(45)]
    with client_from_settings(settings, "sandbox-secret") as c:
        campaign = c.find_campaign("reminders-sms-13175550100")
        assert c.get_contact_list(campaign["contactList"]["id"])["name"].endswith("-2")
        assert c.find_contact_list("reminders-sms-13175550100") is None


# --- issue 8 item 6: e-mail content templates, one campaign per kind, under each reading ---

EMAIL_STEPS = (-2, 0, 3)  # upcoming, due_today, overdue


def _email_outbox(n: int) -> pl.DataFrame:
    """E-mail outbox rows rendered by the product's renderer, kinds cycling."""
    from tasks.render import load_templates, render_messages
    from tasks.settings import RenderSettings

    planned = pl.DataFrame(
        [
            {
                "message_key": f"mail{i:05d}",
                "channel": "email",
                "cadence_step": EMAIL_STEPS[i % 3],
                "due_date": date(2026, 11, 20 + i % 5),
                "invoice_count": 1 + i % 2,
                "first_name": f"Payer{i}",
                "full_name": None,
                "locale": ("en_US", "fr_CA", "de_DE")[i % 3],
                "currencies": ["USD"],
                "amounts_minor": [1000 + 37 * i],
            }
            for i in range(n)
        ]
    )
    rendered = render_messages(
        planned, templates=load_templates(), settings=RenderSettings(), new_token=lambda: "T"
    )
    base = _outbox(n)
    rendered_cols = ["template", "subject", "body", "template_values", "encoding"]
    return (
        base.drop(*rendered_cols, "cadence_step", "invoice_count", "segments", "units")
        .with_columns(
            pl.lit("email").alias("channel"),
            (pl.lit("payer") + pl.int_range(pl.len()).cast(pl.String) + "@example.com").alias(
                "to_address"
            ),
            pl.lit("email:America/New_York:2026-11-23:01").alias("wave_id"),
            (pl.lit("C") + pl.int_range(pl.len()).cast(pl.String)).alias("customer_id"),
            (pl.lit("I") + pl.int_range(pl.len()).cast(pl.String)).alias("invoice_ids"),
        )
        .hstack(
            rendered.select(
                pl.col("template"),
                pl.col("subject"),
                pl.col("body"),
                pl.col("template_values"),
                pl.col("encoding"),
                pl.col("cadence_step"),
                pl.col("invoice_count"),
                pl.col("segments"),
                pl.col("units"),
            )
        )
        .select(MESSAGE_COLUMNS)
    )


def _email_fresh(n: int, paid: set[int]):
    from tasks.normalize import normalize
    from tests import factories as f

    customers = [
        f.customer(customer_id=f"C{i}", phone=None, email=f"payer{i}@example.com") for i in range(n)
    ]
    invoices = [
        f.invoice(
            f"C{i}",
            invoice_id=f"I{i}",
            status="paid" if i in paid else "open",
            amount_due="0.00" if i in paid else "10.00",
        )
        for i in range(n)
    ]
    consent = [f.consent(f"C{i}", "email") for i in range(n)]
    return normalize(f.extracted(customers, invoices, consent), as_of=NOW)


def _email_ledger(sandbox: str) -> list[dict]:
    ledger = httpx.get(f"{sandbox}/sandbox/ledger").json()["messages"]
    return [m for m in ledger if m["source"] == "campaign" and m["channel"] == "email"]


def _recycle_all(sandbox: str, settings: GenesysSettings, until: datetime) -> None:
    with client_from_settings(settings, "sandbox-secret") as c:
        for campaign in c.list_named("campaigns"):
            c.recycle_campaign(campaign["id"])
            c.set_campaign_status(campaign["id"], "on")
    _run(sandbox, until)


@pytest.fixture(params=["refuse", "send_empty"])
def email_reading(request, reading, sandbox) -> tuple[str, str]:
    httpx.put(
        f"{sandbox}/sandbox/config",
        json={"email_without_template": request.param, "template_rendering": "substitute"},
    ).raise_for_status()
    return reading, request.param


def test_email_is_rendered_by_genesys_from_the_template_exactly_as_stored(
    email_reading, sandbox, tmp_path
) -> None:
    _run(sandbox, NOW)
    frame = _email_outbox(9)
    engine = _warehouse(tmp_path, frame)
    settings = _settings(sandbox)
    result = _push_at(engine, settings, NOW, fresh=_email_fresh(9, set()))
    assert result.pushed == 9
    kinds = {"upcoming", "due_today", "overdue"}
    assert set(result.campaigns) == {f"email-{k}" for k in kinds}
    with client_from_settings(settings, "sandbox-secret") as c:
        library = c.find_library("reminders-templates")
        responses = {r["name"]: r for r in c.list_responses(library["id"])}
        assert set(responses) == {f"reminders-email-{k}" for k in kinds}
        for kind in kinds:
            campaign = c.find_campaign(f"reminders-email-{kind}")
            assert (
                campaign["emailConfig"]["contentTemplate"]["id"]
                == (responses[f"reminders-email-{kind}"]["id"])
            )
            columns = c.get_contact_list(campaign["contactList"]["id"])["columnNames"]
            assert not {"Subject", "Message", "Body"} & set(columns)
    _run(sandbox, NOW + timedelta(hours=1))
    mails = _email_ledger(sandbox)
    stored = {r["message_key"]: (r["subject"], r["body"]) for r in frame.iter_rows(named=True)}
    # what Genesys rendered from the template and the contact's columns is the outbox text
    assert {m["contact_id"]: (m["subject"], m["body"]) for m in mails} == stored
    counts = _collect(engine, settings, NOW + timedelta(hours=1))
    assert counts["sent"] + counts["failed"] == 9
    _recycle_all(sandbox, settings, NOW + timedelta(hours=3))
    assert len(_email_ledger(sandbox)) == 9  # never twice, on every route


def test_an_email_payer_is_cancelled_on_its_route_and_never_mailed(
    email_reading, sandbox, tmp_path
) -> None:
    _run(sandbox, NOW)
    engine = _warehouse(tmp_path, _email_outbox(6))
    settings = _settings(sandbox)
    assert _push_at(engine, settings, NOW, fresh=_email_fresh(6, set())).pushed == 6
    result = _push_at(engine, settings, NOW, fresh=_email_fresh(6, {4}), run_id="p2")
    assert result.cancelled == {"email:paid_since_planning": 1}
    _run(sandbox, NOW + timedelta(hours=1))
    _recycle_all(sandbox, settings, NOW + timedelta(hours=3))
    assert sorted(m["contact_id"] for m in _email_ledger(sandbox)) == [
        f"key{i:05d}" for i in range(6) if i != 4
    ]


def test_a_changed_template_updates_the_response_and_reuses_the_campaign(
    client, sandbox, tmp_path
) -> None:
    from tasks.render import load_templates

    _run(sandbox, NOW)
    folder = tmp_path / "templates"
    folder.mkdir()
    import shutil
    from importlib import resources

    for entry in resources.files("templates").iterdir():
        if entry.name.endswith(".txt"):
            (folder / entry.name).write_text(entry.read_text("utf-8"), "utf-8")
    settings = _settings(sandbox)
    engine = _warehouse(tmp_path, _email_outbox(3))
    with client_from_settings(settings, "sandbox-secret") as c:
        push_waves_to_genesys(
            engine,
            c,
            genesys=settings,
            window=WindowSettings(),
            cadence=CadenceSettings(),
            now=NOW,
            horizon=timedelta(minutes=15),
            run_id="p1",
            templates=load_templates(folder),
        )
        library = c.find_library("reminders-templates")
        before = c.find_response(library["id"], "reminders-email-overdue")
        campaign = c.find_campaign("reminders-email-overdue")
        path = folder / "email_overdue.txt"
        path.write_text(path.read_text("utf-8").replace("is still open", "is open"), "utf-8")
        push_waves_to_genesys(
            engine,
            c,
            genesys=settings,
            window=WindowSettings(),
            cadence=CadenceSettings(),
            now=NOW,
            horizon=timedelta(minutes=15),
            run_id="p2",
            templates=load_templates(folder),
        )
        after = c.get_response(before["id"])
        untouched = c.find_response(library["id"], "reminders-email-upcoming")
        assert c.find_campaign("reminders-email-overdue")["id"] == campaign["id"]
    shutil.rmtree(folder)
    assert after["version"] == before["version"] + 1
    assert "is open" in next(t["content"] for t in after["texts"] if t.get("type") == "body")
    assert untouched["version"] == 1


def test_push_objects_and_content_templates_are_ensured_idempotently(client, target) -> None:
    """Runs on a real org too: nothing is added or sent, every campaign stays off."""
    from tasks.push import EMAIL_KINDS, _ensure_objects, names_for

    settings = target.settings
    routes = ["sms", *(f"email-{k}" for k in EMAIL_KINDS)]
    zones = ["America/New_York"]
    first = {r: _ensure_objects(client, r, settings, WindowSettings(), zones) for r in routes}
    again = {r: _ensure_objects(client, r, settings, WindowSettings(), zones) for r in routes}
    assert again == first
    library = client.find_library(names_for("email-upcoming", settings)["library"])
    responses = {r["name"]: r for r in client.list_responses(library["id"])}
    for kind in EMAIL_KINDS:
        names = names_for(f"email-{kind}", settings)
        response = responses[names["response"]]
        assert response["version"] == 1  # unchanged templates are not rewritten
        assert response["responseType"] == "CampaignEmailTemplate"
        campaign = client.get_campaign(first[f"email-{kind}"][1])
        assert campaign["emailConfig"]["contentTemplate"]["id"] == response["id"]
        assert campaign["campaignStatus"] == "off"
    sms = client.get_campaign(first["sms"][1])
    assert sms["smsConfig"]["messageColumn"] == "Message"


def test_email_without_template_values_is_deferred_never_sent_blank(sandbox, tmp_path) -> None:
    configure(sandbox, "hard")
    _run(sandbox, NOW)
    frame = _email_outbox(3).with_columns(
        pl.when(pl.col("message_key") == "key00001")
        .then(None)
        .otherwise(pl.col("template_values"))
        .alias("template_values")
    )
    engine = _warehouse(tmp_path, frame)
    settings = _settings(sandbox)
    result = _push_at(engine, settings, NOW)
    assert (result.pushed, result.no_template_values) == (2, 1)
    with engine.connect() as conn:
        row = read_frame(
            conn, "select state, state_reason from messages where message_key = 'key00001'"
        ).row(0)
    assert row == ("deferred", "missing_template_values")
    _run(sandbox, NOW + timedelta(hours=1))
    assert sorted(m["contact_id"] for m in _email_ledger(sandbox)) == ["key00000", "key00002"]
