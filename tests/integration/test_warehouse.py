from datetime import datetime, timedelta

import polars as pl
import pytest
import sqlalchemy as sa

from tasks.extract import extract_sources
from tasks.normalize import normalize
from tasks.outbox import finish_run, load_prior, mark_ready, save_plan, start_run
from tasks.plan import build_plan
from tasks.render import load_templates
from tasks.settings import Settings, SourcesSettings
from tasks.warehouse import make_engine, migrate, read_frame
from tests import factories as f

AS_OF = datetime(2026, 11, 23, 6, 0)


@pytest.fixture
def engine(warehouse_settings):
    engine = make_engine(warehouse_settings["url"], schema=warehouse_settings.get("db_schema"))
    migrate(engine)
    yield engine
    engine.dispose()


def _count(engine, sql, **params) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


def _run(engine, extracted, run_id, *, as_of=AS_OF, dry_run=False):
    with engine.begin() as conn:
        start_run(
            conn, run_id=run_id, flow="test", as_of=as_of, now=as_of, dry_run=dry_run, parameters={}
        )
        prior, tokens = load_prior(conn, as_of=as_of)
    plan = build_plan(
        extracted,
        normalize(extracted, as_of=as_of),
        prior,
        as_of=as_of,
        settings=Settings(),
        templates=load_templates(),
        existing_tokens=tokens,
    )
    with engine.begin() as conn:
        outbox = save_plan(conn, plan, run_id=run_id, now=as_of, dry_run=dry_run)
        finish_run(
            conn,
            run_id=run_id,
            now=as_of,
            status="succeeded",
            counts=plan.counts,
            accounting_ok=plan.accounting.ok,
        )
    return plan, outbox


def _people(n=3):
    customers = [f.customer(phone=f"+1 212 555 01{i:02d}") for i in range(n)]
    invoices = [f.invoice(c["customer_id"]) for c in customers]
    consent = [f.consent(c["customer_id"], "sms") for c in customers]
    return customers, invoices, consent


def test_migrations_apply_once(engine) -> None:
    assert migrate(engine) == []
    assert _count(engine, "select count(*) from schema_migrations") >= 1


def test_rerun_upserts_by_message_key_and_keeps_tokens(engine) -> None:
    customers, invoices, consent = _people()
    extracted = f.extracted(customers, invoices, consent)
    first, outbox1 = _run(engine, extracted, "r1")
    second, outbox2 = _run(engine, extracted, "r2")
    assert outbox1 == {"inserted": 3, "refreshed": 0, "cancelled": 0}
    assert outbox2 == {"inserted": 0, "refreshed": 3, "cancelled": 0}
    assert _count(engine, "select count(*) from messages") == 3
    assert first.messages.sort("message_key")["link_token"].equals(
        second.messages.sort("message_key")["link_token"]
    )
    assert _count(engine, "select count(*) from decisions") == 12
    assert _count(engine, "select count(*) from message_events") == 3


def test_payment_since_planning_cancels_the_planned_message(engine) -> None:
    customers, invoices, consent = _people()
    _run(engine, f.extracted(customers, invoices, consent), "r1")
    invoices[0] = invoices[0] | {"status": "paid", "amount_due": "0.00"}
    _, outbox = _run(engine, f.extracted(customers, invoices, consent), "r2")
    assert outbox["cancelled"] == 1
    with engine.connect() as conn:
        states = read_frame(conn, "select state, state_reason from messages order by state")
    assert states.rows() == [("cancelled", "invoice_paid"), ("planned", None), ("planned", None)]


def test_payment_cancels_ready_and_planned_messages_but_not_pushed_ones(engine) -> None:
    customers, invoices, consent = _people()
    _run(engine, f.extracted(customers, invoices, consent), "r1")
    with engine.begin() as conn:
        keys = [k for (k,) in conn.execute(sa.text("select message_key from messages order by 1"))]
        for key, state in zip(keys, ("ready", "pushed", "planned"), strict=True):
            conn.execute(
                sa.text("update messages set state = :s where message_key = :k"),
                {"s": state, "k": key},
            )
    invoices = [i | {"status": "paid", "amount_due": "0.00"} for i in invoices]
    _, outbox = _run(engine, f.extracted(customers, invoices, consent), "r2")
    assert outbox["cancelled"] == 2
    with engine.connect() as conn:
        states = read_frame(conn, "select state from messages order by state")
    assert states["state"].to_list() == ["cancelled", "cancelled", "pushed"]


def test_dry_run_writes_decisions_but_no_outbox(engine) -> None:
    customers, invoices, consent = _people()
    plan, outbox = _run(engine, f.extracted(customers, invoices, consent), "dry", dry_run=True)
    assert plan.counts["messages_planned"] == 3
    assert outbox["inserted"] == 0
    assert _count(engine, "select count(*) from messages") == 0
    assert _count(engine, "select count(*) from decisions where run_id = 'dry'") == 6


def test_mark_ready_takes_waves_opening_within_the_horizon(engine) -> None:
    customers, invoices, consent = _people(20)
    _run(engine, f.extracted(customers, invoices, consent), "r1")
    with engine.begin() as conn:
        waves = mark_ready(
            conn, now=datetime(2026, 11, 23, 12, 30), horizon=timedelta(hours=1), run_id="p1"
        )
    assert waves["wave_id"].to_list() == ["sms:America/New_York:2026-11-23:00"]
    ready = _count(engine, "select count(*) from messages where state = 'ready'")
    assert ready == int(waves["messages"].sum())
    assert (
        _count(
            engine,
            "select count(*) from messages where state = 'ready' and wave_start_utc > :t",
            t=datetime(2026, 11, 23, 13, 30),
        )
        == 0
    )
    with engine.begin() as conn:
        mark_ready(conn, now=datetime(2026, 11, 24, 0, 0), horizon=timedelta(hours=1), run_id="p2")
    assert _count(engine, "select count(*) from messages where state = 'planned'") == 0
    # every window (08:00-16:00 New York) is over at midnight UTC: the planned ones and the
    # ready ones (never added to Genesys) expire
    assert _count(engine, "select count(*) from messages where state = 'ready'") == 0
    assert _count(engine, "select count(*) from messages where state = 'expired'") == 20


def test_ready_message_is_never_replanned_or_refreshed(engine) -> None:
    customers, invoices, consent = _people(1)
    _run(engine, f.extracted(customers, invoices, consent), "r1")
    with engine.begin() as conn:
        mark_ready(conn, now=datetime(2026, 11, 23, 16, 0), horizon=timedelta(hours=8), run_id="p1")
    _, outbox = _run(engine, f.extracted(customers, invoices, consent), "r2")
    assert outbox == {"inserted": 0, "refreshed": 0, "cancelled": 0}
    assert _count(engine, "select count(*) from messages where state = 'ready'") == 1


def test_runs_row_records_accounting(engine) -> None:
    customers, invoices, consent = _people()
    invoices.append(f.invoice("ghost"))
    _run(engine, f.extracted(customers, invoices, consent), "r1")
    with engine.connect() as conn:
        row = conn.execute(sa.text("select * from runs where run_id = 'r1'")).mappings().one()
    assert row["decisions_planned"] + row["decisions_excluded"] + row[
        "decisions_quarantined"
    ] == 2 * len(invoices)
    assert row["decisions_quarantined"] == 2
    assert row["accounting_ok"] is True


def test_write_frame_round_trips_types(engine) -> None:
    frame = pl.DataFrame(
        {
            "message_key": ["a"],
            "at_utc": [datetime(2026, 11, 23, 6, 0, 1)],
            "run_id": ["r"],
            "from_state": [None],
            "to_state": ["planned"],
            "detail": ['comma, "quote" and \\N'],
        },
        schema_overrides={"from_state": pl.String},
    )
    from tasks.warehouse import write_frame

    with engine.begin() as conn:
        write_frame(conn, "message_events", frame)
    with engine.connect() as conn:
        back = read_frame(conn, "select * from message_events")
    assert back.row(0) == (
        "a",
        datetime(2026, 11, 23, 6, 0, 1),
        "r",
        None,
        "planned",
        'comma, "quote" and \\N',
    )


def test_write_frame_feeds_one_load_in_slices(engine, monkeypatch) -> None:
    import tasks.warehouse as wh

    monkeypatch.setattr(wh, "_COPY_ROWS", 2)  # PostgreSQL's COPY in slices of two rows
    frame = pl.DataFrame(
        {
            "message_key": [f"k{i}" for i in range(5)],
            "at_utc": [datetime(2026, 11, 23, 6, 0, i) for i in range(5)],
            "run_id": ["r"] * 5,
            "from_state": [None, "a", None, "b,c", None],
            "to_state": ["planned"] * 5,
            "detail": ["x", 'q "y"', None, "line\nbreak", ""],
        },
        schema_overrides={"from_state": pl.String},
    )
    with engine.begin() as conn:
        assert wh.write_frame(conn, "message_events", frame) == 5
    with engine.connect() as conn:
        back = read_frame(conn, "select * from message_events order by message_key")
    assert back.rows() == frame.rows()


@pytest.mark.parametrize("bulk", [False, True], ids=["small", "bulk"])
def test_write_frame_stores_a_text_that_is_exactly_the_copy_null_marker(
    engine, monkeypatch, bulk
) -> None:
    """PostgreSQL's COPY read an unquoted \\N as NULL: a customer_id or invoice_id that is
    the two characters \\N failed the build (NOT NULL), in a nullable column it became NULL;
    and read_arrow (prior messages, phone cache) read a stored \\N back as NULL."""
    import tasks.warehouse as wh

    if bulk:
        monkeypatch.setattr(wh, "SMALL_FRAME_CELLS", 0)
    frame = pl.DataFrame(
        {
            "message_key": ["\\N", "k2"],
            "at_utc": [AS_OF, AS_OF],
            "run_id": ["r", "r"],
            "from_state": ["\\N", None],
            "to_state": ["planned", "planned"],
            "detail": ["\\N", ""],
        },
        schema_overrides={"from_state": pl.String},
    )
    with engine.begin() as conn:
        wh.write_frame(conn, "message_events", frame)
    with engine.connect() as conn:
        back = read_frame(conn, "select * from message_events order by message_key")
        fast = wh.read_arrow(
            conn,
            "select message_key, from_state, detail from message_events",
            {"message_key": pl.String(), "from_state": pl.String(), "detail": pl.String()},
        )
    assert sorted(back.rows(), key=str) == sorted(frame.rows(), key=str)
    expected = frame.select("message_key", "from_state", "detail").rows()
    assert sorted(fast.rows(), key=str) == sorted(expected, key=str)


def test_write_frame_small_and_bulk_loads_store_the_same_rows(engine, monkeypatch) -> None:
    """A small frame (one VALUES insert on DuckDB) and a bulk one (Arrow / COPY) read back
    the same: strings with quotes, nulls, integers, naive timestamps."""
    import tasks.warehouse as wh

    def rows(prefix: str) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "alert_key": [f"{prefix}1", f"{prefix}2"],
                "event_id": ["e'1", 'e"2'],
                "customer_id": ["C1", "C2"],
                "channel": ["sms", None],
                "state": ["ready", "held"],
                "attempts": pl.Series([0, 3], dtype=pl.Int32),
                "release_at_utc": [datetime(2026, 11, 23, 6, 0, 1, 250), None],
                "created_at_utc": [AS_OF, AS_OF],
                "updated_at_utc": [AS_OF, AS_OF],
            }
        )

    with engine.begin() as conn:
        wh.write_frame(conn, "alerts", rows("small-"))
    monkeypatch.setattr(wh, "SMALL_FRAME_CELLS", 0)
    with engine.begin() as conn:
        wh.write_frame(conn, "alerts", rows("bulk-"))
    with engine.connect() as conn:
        back = read_frame(conn, "select * from alerts order by alert_key")
    small = back.filter(pl.col("alert_key").str.starts_with("small-")).drop("alert_key")
    bulk = back.filter(pl.col("alert_key").str.starts_with("bulk-")).drop("alert_key")
    assert small.height == 2
    assert small.to_dicts() == bulk.to_dicts()
    assert small["event_id"].to_list() == ["e'1", 'e"2']
    assert small["release_at_utc"].to_list() == [datetime(2026, 11, 23, 6, 0, 1, 250), None]


def test_write_rows_small_and_bulk_store_what_write_frame_stores(engine, monkeypatch) -> None:
    """Plain tuples through ``write_rows`` (one VALUES insert from the tuples on DuckDB, a
    frame through ``write_frame`` for more cells) read back as the same frame written by
    ``write_frame``."""
    import tasks.warehouse as wh

    schema = {
        "alert_key": pl.String,
        "event_id": pl.String,
        "customer_id": pl.String,
        "channel": pl.String,
        "state": pl.String,
        "attempts": pl.Int32,
        "release_at_utc": pl.Datetime("us"),
        "created_at_utc": pl.Datetime("us"),
        "updated_at_utc": pl.Datetime("us"),
    }

    def rows(prefix: str) -> list[tuple]:
        release = datetime(2026, 11, 23, 6, 0, 1, 250)
        return [
            (f"{prefix}1", "e'1", "C1", "sms", "ready", 0, release, AS_OF, AS_OF),
            (f"{prefix}2", 'e"2', "C2", None, "held", 3, None, AS_OF, AS_OF),
        ]

    with engine.begin() as conn:
        assert wh.write_rows(conn, "alerts", rows("small-"), schema) == 2
        wh.write_frame(conn, "alerts", pl.DataFrame(rows("frame-"), schema=schema, orient="row"))
        assert wh.write_rows(conn, "alerts", [], schema) == 0
    monkeypatch.setattr(wh, "SMALL_FRAME_CELLS", 0)
    with engine.begin() as conn:
        assert wh.write_rows(conn, "alerts", rows("bulk-"), schema) == 2
    with engine.connect() as conn:
        back = read_frame(conn, "select * from alerts order by alert_key")

    def part(prefix: str) -> list[dict]:
        return back.filter(pl.col("alert_key").str.starts_with(prefix)).drop("alert_key").to_dicts()

    assert len(part("small-")) == 2
    assert part("small-") == part("frame-") == part("bulk-")
    assert [r["event_id"] for r in part("small-")] == ["e'1", 'e"2']


def test_analyst_views_answer(engine) -> None:
    customers, invoices, consent = _people(4)
    _run(engine, f.extracted(customers, invoices, consent), "r1")
    with engine.connect() as conn:
        waves = read_frame(conn, "select * from wave_summary")
        reasons = read_frame(conn, "select * from decision_reasons order by status, reason")
    assert waves["messages"].sum() == 4
    assert set(waves["state"]) == {"planned"}
    assert reasons.select("status", "reason", "decisions").rows() == [
        ("excluded", "one_per_day", 4),
        ("planned", "planned", 4),
    ]


def test_decisions_and_messages_store_zone_source_and_every_zone(engine) -> None:
    c = f.customer(country="CA", preferred_timezone=None, postal_code=None, phone="+1 709 555 0100")
    inv = f.invoice(c["customer_id"], currency="CAD")
    _run(engine, f.extracted([c], [inv], [f.consent(c["customer_id"], "sms")]), "z1")
    with engine.connect() as conn:
        decisions = read_frame(
            conn,
            "select zone_source, candidate_zones, send_at_local_by_zone from decisions"
            " where run_id = 'z1' and status = 'planned'",
        )
        messages = read_frame(conn, "select candidate_zones, send_at_local_by_zone from messages")
    assert decisions.height == 1
    zone_source, candidates, by_zone = decisions.row(0)
    assert (zone_source, candidates) == ("phone", "America/Halifax|America/St_Johns")
    assert [part.split(" ")[0] for part in by_zone.split("; ")] == [
        "America/Halifax",
        "America/St_Johns",
    ]
    assert messages.rows() == [(candidates, by_zone)]


def _migrate_before(conn, version: str) -> None:
    """Apply (and record) the migrations older than ``version``: a warehouse made before it."""
    from tasks.warehouse import _sql_files, _statements

    conn.exec_driver_sql(
        "create table schema_migrations"
        " (version varchar primary key, applied_at_utc timestamp not null)"
    )
    for name, text in _sql_files("migrations", conn.dialect.name):
        if name >= version:
            continue
        for statement in _statements(text):
            conn.exec_driver_sql(statement)
        conn.execute(
            sa.text("insert into schema_migrations values (:v, :t)"), {"v": name, "t": AS_OF}
        )


def test_migration_0003_adds_the_zone_columns_to_an_existing_warehouse(warehouse_settings):
    from tasks.warehouse import _sql_files

    engine = make_engine(warehouse_settings["url"], schema=warehouse_settings.get("db_schema"))
    try:
        with engine.begin() as conn:
            _migrate_before(conn, "0003")
            conn.exec_driver_sql(
                "insert into decisions (run_id, invoice_row, channel, status, reason)"
                " values ('old', 0, 'sms', 'excluded', 'no_step_due')"
            )
        # 0003 and every later migration (other issues add theirs), in order
        later = sorted(n for n, _ in _sql_files("migrations", engine.dialect.name) if n >= "0003")
        assert later[0] == "0003_zone_source"
        assert migrate(engine) == later
        with engine.connect() as conn:
            old = read_frame(
                conn,
                "select reason, zone_source, candidate_zones, send_at_local_by_zone"
                " from decisions where run_id = 'old'",
            )
            conn.execute(sa.text("select send_at_local_by_zone from messages"))
            conn.execute(sa.text("select genesys_wrapup_code from messages"))
        assert old.rows() == [("no_step_due", None, None, None)]
    finally:
        engine.dispose()


DECISION_ROW = {
    "run_id": "old",
    "invoice_id": "INV-1",
    "invoice_row": 7,
    "customer_id": "C1",
    "channel": "sms",
    "cadence_step": -7,
    "status": "planned",
    "reason": "planned",
    "detail": "d",
    "message_key": "k" * 32,
    "time_zone": "America/New_York",
    "local_send_date": datetime(2026, 11, 23).date(),
    "send_at_local": datetime(2026, 11, 23, 9, 30),
    "send_at_utc": datetime(2026, 11, 23, 14, 30),
    "wave_id": "w",
    "slot": 3,
    "amount_due_minor": 12345,
    "currency": "USD",
    "zone_source": "postal_code",
    "candidate_zones": "America/New_York",
    "send_at_local_by_zone": "America/New_York 2026-11-23 09:30",
}


def test_migration_0013_keeps_every_decision_and_column(warehouse_settings):
    """DuckDB's decisions table is copied into one without the primary key: the rows, the
    columns (in order) and their NOT NULLs stay; PostgreSQL keeps its table and key."""

    engine = make_engine(warehouse_settings["url"], schema=warehouse_settings.get("db_schema"))
    columns_sql = (
        "select column_name, is_nullable from information_schema.columns"
        " where table_name = 'decisions' and table_schema = current_schema()"
        " order by ordinal_position"
    )
    try:
        with engine.begin() as conn:
            _migrate_before(conn, "0013")
            names = ", ".join(DECISION_ROW)
            conn.execute(
                sa.text(f"insert into decisions ({names}) values (:{', :'.join(DECISION_ROW)})"),
                DECISION_ROW,
            )
            before = conn.exec_driver_sql(columns_sql).fetchall()
        assert "0013_duckdb_decisions_keyless" in migrate(engine)
        with engine.connect() as conn:
            after = conn.exec_driver_sql(columns_sql).fetchall()
            rows = conn.execute(sa.text(f"select {names} from decisions")).mappings().all()
        assert after == before
        assert [c for c, _ in after][: len(DECISION_ROW)] == list(DECISION_ROW)
        assert {c for c, n in after if n == "NO"} == {
            "run_id", "invoice_row", "channel", "status", "reason"
        }  # fmt: skip
        assert [dict(r) for r in rows] == [DECISION_ROW]
        with engine.begin() as conn:  # a run's rows still go in and out as before
            conn.execute(
                sa.text(f"insert into decisions ({names}) values (:{', :'.join(DECISION_ROW)})"),
                DECISION_ROW | {"run_id": "new"},
            )
            conn.execute(sa.text("delete from decisions where run_id = 'old'"))
        assert _count(engine, "select count(*) from decisions where run_id = 'new'") == 1
    finally:
        engine.dispose()


def test_migration_0014_indexes_planned_decisions_by_message_key(engine) -> None:
    """PostgreSQL indexes decisions by message key for planned rows only, and what reads
    them by key (exclude_decisions) can use that index; DuckDB has no secondary index there."""
    with engine.begin() as conn:
        if conn.dialect.name == "duckdb":
            indexes = conn.exec_driver_sql(
                "select index_name from duckdb_indexes() where table_name = 'decisions'"
            ).fetchall()
            assert indexes == []
            return
        indexes = dict(
            conn.exec_driver_sql(
                "select indexname, indexdef from pg_indexes"
                " where tablename = 'decisions' and schemaname = current_schema()"
            ).fetchall()
        )
        assert "decisions_message_key" not in indexes
        partial = indexes["decisions_planned_message_key"]
        assert "WHERE ((status)::text = 'planned'::text)" in partial
        assert "decisions_customer" in indexes
        conn.exec_driver_sql("create temporary table stage_exclude (message_key varchar)")
        conn.exec_driver_sql("set local enable_seqscan = off")
        plan = conn.exec_driver_sql(
            "explain update decisions set status = 'excluded', reason = 'r', detail = 'd'"
            " from stage_exclude s, messages m"
            " where decisions.message_key = s.message_key and m.message_key = s.message_key"
            " and decisions.run_id = m.first_run_id and decisions.status = 'planned'"
        ).fetchall()
    assert "decisions_planned_message_key" in "\n".join(row[0] for row in plan)


def test_a_same_day_rerun_refreshes_messages_in_place_on_postgresql(engine) -> None:
    """Migration 0015: PostgreSQL keeps room on each messages page, so a re-run's refresh of
    planned messages writes no index entry (every update HOT)."""
    if engine.dialect.name != "postgresql":
        return
    customers, invoices, consent = _people(20)
    extracted = f.extracted(customers, invoices, consent)
    _run(engine, extracted, "r1")
    with engine.connect() as conn:
        options = conn.exec_driver_sql(
            "select reloptions from pg_class where oid = 'messages'::regclass"
        ).scalar_one()
    assert "fillfactor=50" in options
    _, outbox = _run(engine, extracted, "r2")
    assert outbox["refreshed"] == 20
    with engine.connect() as conn:
        conn.exec_driver_sql("select pg_stat_force_next_flush()")
    with engine.connect() as conn:
        updated, hot = conn.exec_driver_sql(
            "select n_tup_upd, n_tup_hot_upd from pg_stat_user_tables"
            " where relid = 'messages'::regclass"
        ).one()
    assert updated == hot == 20


def test_migration_0007_adds_data_docs_path_and_the_no_send_days_table(warehouse_settings):
    engine = make_engine(warehouse_settings["url"], schema=warehouse_settings.get("db_schema"))
    try:
        migrate(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "insert into no_send_days (country, subdivision, day, name)"
                " values ('US', null, '2026-11-24', 'Company closure')"
            )
            start_run(
                conn,
                run_id="r1",
                flow="build-reminders",
                as_of=AS_OF,
                now=AS_OF,
                dry_run=True,
                parameters={},
            )
            finish_run(
                conn, run_id="r1", now=AS_OF, status="failed", data_docs_path="/x/index.html"
            )
        from flows.build_reminders import load_no_send_days

        with engine.connect() as conn:
            days = load_no_send_days(conn, Settings())
            docs = conn.exec_driver_sql("select data_docs_path from runs").scalar_one()
        assert days.select("country", "day", "name", "kind").rows() == [
            ("US", datetime(2026, 11, 24).date(), "Company closure", "holiday")
        ]
        assert docs == "/x/index.html"
    finally:
        engine.dispose()


def test_a_nul_character_in_an_id_is_quarantined_and_every_warehouse_stores_the_run(
    engine, tmp_path
) -> None:
    """PostgreSQL text cannot hold U+0000: one NUL in a customer_id or invoice_id made the
    whole run's decisions COPY fail (CharacterNotInRepertoire), nobody was reminded. The row
    is quarantined encoding_invalid instead, its id stored as \\x00."""
    good = f.customer(customer_id="C1")
    bad = f.customer(customer_id="C\x002")
    rows = {
        "customers": [good, bad],
        "invoices": [f.invoice("C1", invoice_id="I\x001"), f.invoice("C1", invoice_id="I2")],
        "consent_events": [f.consent("C1", "sms")],
        "contact_history": [],
    }
    for name, values in rows.items():
        f.frame(name, values).write_csv(tmp_path / f"{name}.csv")
    spec = {n: {"kind": "csv", "path": str(tmp_path / f"{n}.csv")} for n in rows}
    extracted = extract_sources(SourcesSettings.model_validate(spec))
    plan, _ = _run(engine, extracted, "nul")
    assert plan.accounting.ok, plan.accounting.problems
    with engine.connect() as conn:
        q = read_frame(conn, "select source, record_key, rule from quarantine where scope = 'row'")
        d = read_frame(conn, "select invoice_id, status from decisions where channel = 'sms'")
    assert sorted(q.rows()) == [
        ("customers", "C\\x002", "encoding_invalid"),
        ("invoices", "I\\x001", "encoding_invalid"),
    ]
    assert sorted(d.rows()) == [("I2", "planned"), ("I\\x001", "quarantined")]


def test_an_all_or_nothing_transition_moves_every_key_or_rolls_back(engine) -> None:
    """The push's own intents and results move with one scan of the outbox: every key moves
    and is logged from its one state, or none does (OutboxConflict, transaction rolled
    back) when any key was no longer in that state."""
    from tasks.errors import OutboxConflict
    from tasks.outbox import transition

    customers, invoices, consent = _people(6)
    _run(engine, f.extracted(customers, invoices, consent), "r1")
    with engine.connect() as conn:
        keys = read_frame(conn, "select message_key from messages order by message_key")
    assert keys.height == 6, "the premise: six planned messages"
    first, rest = keys.head(4), keys.tail(2)
    at = AS_OF + timedelta(hours=1)
    with engine.begin() as conn:
        moved = transition(
            conn,
            pl.concat([first, first.head(1)]),  # a repeated key counts once
            from_states=("planned",),
            to_state="ready",
            run_id="p1",
            now=at,
            detail="test",
            all_or_nothing=True,
        )
    assert moved == 4
    events = "select count(*) from message_events where run_id = :r and from_state = :f"
    assert _count(engine, events, r="p1", f="planned") == 4
    assert _count(engine, "select count(*) from messages where state = 'ready'") == 4
    # one key of the group already moved on: nothing moves, nothing is logged
    conflict = "1 of 3 messages were no longer planned"
    with pytest.raises(OutboxConflict, match=conflict), engine.begin() as conn:
        transition(
            conn,
            pl.concat([rest, first.head(1)]),
            from_states=("planned",),
            to_state="ready",
            run_id="p2",
            now=at,
            all_or_nothing=True,
        )
    assert _count(engine, "select count(*) from messages where state = 'planned'") == 2
    assert _count(engine, "select count(*) from message_events where run_id = 'p2'") == 0
