"""The batch machinery of the push: grouped state changes, intent before every call, and a
failed call that stops the push without stranding or sending the batches not yet started."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta

import polars as pl
import pytest

import tasks.push as push
from tasks.errors import GenesysError
from tasks.outbox import MESSAGE_COLUMNS
from tasks.push import PushResult, _push_batches
from tasks.warehouse import make_engine, migrate, read_frame, write_frame

NOW = datetime(2026, 11, 23, 18, 0)


def _messages(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "message_key": [f"k{i:03d}" for i in range(n)],
            "customer_id": "C",
            "channel": "sms",
            "local_send_date": date(2026, 11, 23),
            "time_zone": "America/New_York",
            "candidate_zones": "America/New_York",
            "send_at_local": NOW,
            "send_at_local_by_zone": "America/New_York 2026-11-23 18:00",
            "send_at_utc": NOW,
            "window_start_utc": NOW - timedelta(hours=1),
            "window_end_utc": NOW + timedelta(hours=2),
            "wave_id": [f"w{i // 4}" for i in range(n)],
            "slot": 1,
            "wave_start_utc": NOW - timedelta(minutes=5),
            "to_address": [f"+1317555{i:04d}" for i in range(n)],
            "template": "sms_upcoming",
            "subject": None,
            "body": "Reminder",
            "encoding": "GSM-7",
            "segments": 1,
            "units": 8,
            "invoice_ids": [f"I{i}" for i in range(n)],
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
        },
        schema_overrides={"subject": pl.String, "template_values": pl.String},
    ).select(MESSAGE_COLUMNS)


def _states(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(read_frame(conn, "select message_key, state from messages").rows())


class _Genesys:
    """A contact list that checks, at every add, that the warehouse already says ``pushing``
    (committed, read on its own connection) for each contact; optionally fails one add."""

    def __init__(self, engine, fail_on_call: int | None = None) -> None:
        self.engine = engine
        self.fail_on_call = fail_on_call
        self.calls = 0
        self.added: list[str] = []
        self.not_pushing_at_call: list[str] = []
        self.lock = threading.Lock()

    def add_contacts(self, list_id, contacts, **_kwargs):
        with self.lock:
            self.calls += 1
            call = self.calls
        states = _states(self.engine)
        ids = contacts["id"].to_list()  # the push hands the client a frame of contacts
        with self.lock:
            self.not_pushing_at_call += [i for i in ids if states[i] != "pushing"]
        if call == self.fail_on_call:
            raise GenesysError("Genesys kept answering 503")
        with self.lock:
            self.added += ids
        return []


def _setup(tmp_path, n: int):
    engine = make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    migrate(engine)
    frame = _messages(n)
    with engine.begin() as conn:
        write_frame(conn, "messages", frame)
    batches = [
        (str(frame["wave_id"][start]), frame.slice(start, 2)) for start in range(0, frame.height, 2)
    ]
    return engine, frame, batches


def _push(engine, genesys, batches, result: PushResult, **kwargs) -> int:
    """_push_batches on route sms of list l1 / campaign c1, as run p at NOW."""
    return _push_batches(
        engine,
        genesys,
        batches,
        "sms",
        contact_list_id="l1",
        campaign_id="c1",
        run_id="p",
        now=NOW,
        result=result,
        **kwargs,
    )


def _count_groups(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Sizes of the groups (batches or outcomes) passed to push.<name> from now on."""
    sizes: list[int] = []
    real = getattr(push, name)

    def counted(engine, group, **kwargs):
        sizes.append(len(group))
        return real(engine, group, **kwargs)

    monkeypatch.setattr(push, name, counted)
    return sizes


def test_intent_is_committed_before_every_call_and_grouped(tmp_path, monkeypatch) -> None:
    engine, frame, batches = _setup(tmp_path, 12)  # 6 batches of 2
    groups = _count_groups(monkeypatch, "_mark_pushing")
    genesys = _Genesys(engine)
    result = PushResult()
    done: list[int] = []
    handled = _push(engine, genesys, batches, result, concurrency=1, progress=done.append)
    assert genesys.not_pushing_at_call == []
    assert sorted(genesys.added) == sorted(frame["message_key"])
    assert set(_states(engine).values()) == {"pushed"}
    assert handled == sum(done) == frame.height
    assert result.pushed == frame.height
    assert result.batches == len(batches)
    assert sum(groups) == len(batches)
    assert len(groups) < len(batches)  # intents are grouped, not one transaction per batch


def test_the_last_calls_are_recorded_in_one_transaction(tmp_path, monkeypatch) -> None:
    engine, frame, batches = _setup(tmp_path, 12)  # 6 batches of 2, all in the first group
    recorded = _count_groups(monkeypatch, "_record_results")
    result = PushResult()
    _push(engine, _Genesys(engine), batches, result, concurrency=3)
    assert recorded == [len(batches)]
    assert set(_states(engine).values()) == {"pushed"}
    assert result.pushed == frame.height


def test_returned_batches_are_recorded_in_groups_while_calls_are_in_flight(
    tmp_path, monkeypatch
) -> None:
    """Every recording transaction scans the outbox, so returned batches wait (up to
    ``4 x concurrency`` of them or RECORD_EVERY_SECONDS) and are recorded together."""
    engine, frame, batches = _setup(tmp_path, 160)  # 80 batches of 2
    recorded = _count_groups(monkeypatch, "_record_results")
    monkeypatch.setattr(push, "RECORD_EVERY_SECONDS", 60.0)  # only the count triggers
    result = PushResult()
    done: list[int] = []
    _push(engine, _Genesys(engine), batches, result, concurrency=4, progress=done.append)
    assert sum(recorded) == len(batches)
    # a transaction per 4 x concurrency returned batches (or when none is left in flight),
    # not one per returned call
    assert len(recorded) <= len(batches) // 16 + 2, recorded
    assert set(_states(engine).values()) == {"pushed"}
    assert sum(done) == result.pushed == frame.height


def test_a_returned_batch_is_recorded_within_the_interval_while_others_hang(
    tmp_path, monkeypatch
) -> None:
    """A batch that returned is not held back by a slow call: after RECORD_EVERY_SECONDS it
    is recorded (and reported) although fewer than ``concurrency`` batches returned."""
    engine, frame, batches = _setup(tmp_path, 80)  # 40 batches, more than one group
    release = threading.Event()
    seen_pushed = threading.Event()

    class _SlowLast(_Genesys):
        def add_contacts(self, list_id, contacts, **kwargs):
            # every call but the first hangs until the first batch is recorded: fewer than
            # ``4 x concurrency`` batches ever return before that
            if contacts["id"][0] != "k000":
                assert release.wait(30), "the returned batches were never recorded"
            return super().add_contacts(list_id, contacts, **kwargs)

    def progress(_n: int) -> None:
        seen_pushed.set()
        release.set()

    monkeypatch.setattr(push, "RECORD_EVERY_SECONDS", 0.2)
    result = PushResult()
    _push(engine, _SlowLast(engine), batches, result, concurrency=4, progress=progress)
    assert seen_pushed.is_set()
    assert result.pushed == frame.height


def test_waves_of_a_route_run_at_once_and_a_failure_starts_no_further_wave() -> None:
    """_push_route_waves: wave 1 can only finish after wave 2 has (sequential waves would
    hang); after a wave fails no new wave starts, the running ones finish and are merged."""
    from concurrent.futures import ThreadPoolExecutor

    second_done = threading.Event()
    started: list[str] = []

    def run(wave_id: str) -> PushResult:
        started.append(wave_id)
        if wave_id == "w1":
            assert second_done.wait(30), "wave 2 never ran while wave 1 was in flight"
        if wave_id == "w2":
            second_done.set()
        if wave_id == "w3":
            raise GenesysError("wave 3 failed")
        return PushResult(pushed=1)

    waves = [push.WavePush("sms", w, pl.DataFrame(), "l", "c") for w in ("w1", "w2", "w3", "w4")]
    result = PushResult()
    with ThreadPoolExecutor(4) as pool:
        push._push_route_waves(
            waves[:2], result, in_flight=2, push=lambda w, _stop: pool.submit(run, w.wave_id)
        )
        assert result.pushed == 2
        result = PushResult()
        with pytest.raises(GenesysError):
            push._push_route_waves(
                waves[2:], result, in_flight=1, push=lambda w, _stop: pool.submit(run, w.wave_id)
            )
    assert "w4" not in started  # in_flight 1: wave 4 would start only after wave 3 succeeded
    assert result.pushed == 0


def test_a_stop_request_starts_no_new_group_and_unsent_batches_go_back_to_ready(
    tmp_path,
) -> None:
    """A wave told to stop (another wave failed, the run was interrupted) finishes the call
    in flight, records it, returns its queued batches to ready and starts no new group."""
    engine, _frame, batches = _setup(tmp_path, 24)  # 12 batches: a group of 8, then 4
    stop = threading.Event()

    class _StopOnFirst(_Genesys):
        def add_contacts(self, list_id, contacts, **kwargs):
            answer = super().add_contacts(list_id, contacts, **kwargs)
            stop.set()  # set while the first call is in flight
            return answer

    genesys = _StopOnFirst(engine)
    result = PushResult()
    _push(engine, genesys, batches, result, concurrency=1, stop=stop)
    states = _states(engine)
    assert genesys.added == ["k000", "k001"]  # the one call in flight, nothing after
    assert {k for k, s in states.items() if s == "pushed"} == {"k000", "k001"}
    assert set(states.values()) == {"pushed", "ready"}  # nothing left pushing
    assert result.pushed == 2


def test_a_failed_call_stops_the_push_and_unstarted_batches_go_back_to_ready(
    tmp_path,
) -> None:
    engine, _frame, batches = _setup(tmp_path, 24)  # 12 batches of 2: one group of 8 first
    genesys = _Genesys(engine, fail_on_call=3)
    with pytest.raises(GenesysError):
        _push(engine, genesys, batches, PushResult(), concurrency=1)
    states = _states(engine)
    added = set(genesys.added)
    assert genesys.not_pushing_at_call == []
    # sent -> pushed; the failed call -> pushing (settled by lookup next run); never sent ->
    # ready, and nothing ready was ever added
    assert {k for k, s in states.items() if s == "pushed"} == added
    assert sorted(k for k, s in states.items() if s == "pushing") == ["k004", "k005"]
    ready = {k for k, s in states.items() if s == "ready"}
    assert not ready & added
    assert {f"k{i:03d}" for i in range(16, 24)} <= ready  # the group never committed
    assert genesys.calls < len(batches)


def test_messages_in_reads_through_arrow_what_python_rows_gave(tmp_path) -> None:
    from polars.testing import assert_frame_equal

    from tasks.outbox import messages_in

    engine, frame, _batches = _setup(tmp_path, 12)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "update messages set state = 'pushed', genesys_contact_list_id = 'l1',"
            " window_end_utc = window_end_utc + interval 1 hour where message_key < 'k004'"
        )
    query = (
        "select * from messages where state in ({states}){after}"
        " order by wave_start_utc, wave_id, send_at_utc, message_key"
    )
    cases = [
        (("ready", "pushed"), None, ""),
        (("ready", "pushed"), NOW + timedelta(hours=2), " and window_end_utc > :after"),
        (("pushed",), None, ""),  # genesys_contact_list_id has a value in every row
        (("cancelled",), None, ""),  # no rows
    ]
    with engine.connect() as conn:
        for states, after, where in cases:
            sql = query.format(states=", ".join(f"'{s}'" for s in states), after=where)
            rows = read_frame(conn, sql, {"after": after} if after else {})
            assert_frame_equal(messages_in(conn, states, window_end_after=after), rows)
    assert rows.height == 0  # the last case: no rows
    assert frame.height == 12


def test_messages_in_of_invoices_or_customers(tmp_path) -> None:
    """``invoice_ids`` / ``customer_ids`` leave to the database only the rows of those
    invoices (one of a comma-separated list) or customers: the rows a Python filter of every
    live row keeps (a longer id sharing the prefix may come along; callers check exactly)."""
    from tasks.outbox import messages_in

    engine, _frame, _batches = _setup(tmp_path, 12)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "update messages set invoice_ids = 'I10,I2' where message_key = 'k001'"
        )
        conn.exec_driver_sql("update messages set invoice_ids = 'I1' where message_key = 'k002'")
        conn.exec_driver_sql("update messages set invoice_ids = 'X,I1' where message_key = 'k003'")
    with engine.connect() as conn:
        every = messages_in(conn, ("ready",))
        some = messages_in(conn, ("ready",), invoice_ids=["I1", "I2"], customer_ids=["nobody"])
        by_customer = messages_in(conn, ("ready",), customer_ids=[every["customer_id"][5]])
    keys = set(some["message_key"])
    assert keys == {"k001", "k002", "k003"}
    wanted = every.filter(
        pl.col("invoice_ids").str.split(",").list.eval(pl.element().is_in(["I1", "I2"])).list.any()
    )
    assert keys == set(wanted["message_key"])
    assert set(by_customer["message_key"]) == set(
        every.filter(pl.col("customer_id") == every["customer_id"][5])["message_key"]
    )
    assert some.columns == every.columns
