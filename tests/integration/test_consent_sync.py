"""Consent in Genesys data tables and the CRM round trip (issue 12, items 5-6)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import sqlalchemy as sa

from genesys_sandbox import SandboxConfig, create_app
from genesys_sandbox.testing import serve
from tasks.alerts import directory_from_frames
from tasks.consent_sync import (
    CONSENT_COLUMNS,
    TEMPLATE_COLUMNS,
    captured_events,
    consent_rows,
    contactable_gap,
    export_changes,
    import_changes,
    publish,
    template_rows,
)
from tasks.genesys import GenesysClient
from tasks.render import load_templates
from tasks.warehouse import make_engine, migrate
from tests.alerts_support import consent, customers

NOW = datetime(2026, 11, 30, 5, 0)


def _people() -> pl.DataFrame:
    return customers(
        [
            {"customer_id": "C1", "phone_e164": "+13175550001", "email": "C1@Example.com"},
            {"customer_id": "C2", "phone_e164": "+13175550002", "email": None},
            {"customer_id": "C3", "phone_e164": "+13175550009", "email": None},
            {"customer_id": "C4", "phone_e164": "+13175550009", "email": None},
        ]
    )


CRM = consent(
    [
        ("C1", "sms", "opt_in", datetime(2026, 1, 1)),
        ("C2", "sms", "opt_in", datetime(2026, 1, 1)),
        ("C3", "sms", "opt_in", datetime(2026, 1, 1)),
        ("C4", "sms", "opt_in", datetime(2026, 1, 1)),
    ]
)


def _keyword(
    engine: sa.Engine,
    customer: str | None,
    address: str,
    status: str,
    at: datetime,
    recorded: datetime | None = None,
) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into consent_events values (:id, :c, :a, 'sms', :s, 'STOP', :s,"
                " 'keyword:twilio', :t, :r, :id)"
            ),
            {
                "id": f"{address}:{at:%H%M}",
                "c": customer,
                "a": address,
                "s": status,
                "t": at,
                "r": recorded or at,
            },
        )


def test_publish_round_trip_and_gap(tmp_path: Path) -> None:
    engine = make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    migrate(engine)
    assert import_changes(engine, CRM, now=NOW)["imported"] == 4
    assert import_changes(engine, CRM, now=NOW)["imported"] == 0  # nothing newer
    _keyword(engine, "C2", "+13175550002", "opt_out", datetime(2026, 11, 29, 12, 0))
    _keyword(engine, None, "+13175559999", "opt_out", datetime(2026, 11, 29, 13, 0))
    directory = directory_from_frames(_people(), CRM.head(0)).refreshed(engine, now=NOW)
    rows = consent_rows(directory, captured_events(engine))
    table = {r["key"]: r for r in rows.to_dicts()}
    assert table["+13175550001"] == {
        "key": "+13175550001",
        "customerId": "C1",
        "smsAllowed": True,
        "emailAllowed": False,
        "optedOut": False,
    }
    assert table["c1@example.com"]["emailAllowed"] is True
    assert table["+13175550002"]["optedOut"] is True
    assert table["+13175550002"]["smsAllowed"] is False
    assert table["+13175550009"]["customerId"] == "C3,C4"
    assert table["+13175550009"]["smsAllowed"] is False  # shared number: no SMS
    assert table["+13175559999"]["optedOut"] is True  # keyword from an unknown number

    with serve(create_app(SandboxConfig())) as url:
        client = GenesysClient(
            api_base=url, login_base=url, client_id="sandbox-client", client_secret="sandbox-secret"
        )
        first = publish(client, "reminders-consent", CONSENT_COLUMNS, rows, "test")
        assert first == {"rows": len(table), "created": len(table), "updated": 0}
        again = publish(client, "reminders-consent", CONSENT_COLUMNS, rows, "test")
        assert again == {"rows": len(table), "created": 0, "updated": 0}
        # C1 opts out: exactly its two addresses change
        _keyword(engine, "C1", "+13175550001", "opt_out", datetime(2026, 11, 29, 14, 0))
        changed = consent_rows(directory.refreshed(engine, now=NOW), captured_events(engine))
        third = publish(client, "reminders-consent", CONSENT_COLUMNS, changed, "test")
        assert third == {"rows": len(table), "created": 0, "updated": 2}
        remote = client.datatable_rows(client.find_datatable("reminders-consent")["id"])
        assert {r["key"]: r["optedOut"] for r in remote}["+13175550001"] is True
        templates = template_rows(load_templates())
        t = publish(client, "reminders-templates", TEMPLATE_COLUMNS, templates, "test")
        assert t["created"] == templates.height
        assert "sms_payment_received" in templates["key"].to_list()
        client.close()

    out = export_changes(engine, now=NOW, folder=tmp_path / "crm")
    assert out["exported"] == 3  # the three keyword events; the CRM's own are not sent back
    exported = pl.read_csv(out["to"])
    assert sorted(exported["address"].to_list()) == [
        "+13175550001",
        "+13175550002",
        "+13175559999",
    ]
    assert export_changes(engine, now=NOW, folder=tmp_path / "crm")["exported"] == 0
    target = f"duckdb:///{tmp_path / 'crm.duckdb'}"
    later = datetime(2026, 11, 30, 5, 1)  # recorded after the export above
    _keyword(engine, "C3", "+13175550009", "opt_out", datetime(2026, 11, 30, 4, 0), later)
    assert export_changes(engine, now=later, target_url=target)["exported"] == 1
    crm_db = make_engine(target)
    with crm_db.begin() as conn:
        assert conn.execute(sa.text("select customer_id from crm_consent_changes")).all() == [
            ("C3",)
        ]
    crm_db.dispose()

    gap = contactable_gap(engine, directory, CRM)
    # opted out by keyword here, still opted in at the CRM (the unknown number has no customer)
    assert gap.select("address", "customer_id").rows() == [
        ("+13175550001", "C1"),
        ("+13175550002", "C2"),
        ("+13175550009", "C3"),
        ("+13175550009", "C4"),
    ]
    # the CRM takes C2's opt-out in: C2 leaves the report (conflict resolved by time)
    crm_later = CRM.vstack(consent([("C2", "sms", "opt_out", datetime(2026, 11, 30, 1, 0))]))
    assert import_changes(engine, crm_later, now=NOW)["imported"] == 1
    gap = contactable_gap(engine, directory, crm_later)
    assert "C2" not in gap["customer_id"].to_list()
    engine.dispose()


def test_a_crm_event_dated_in_the_future_or_entered_late_never_stops_later_imports(
    tmp_path: Path,
) -> None:
    """A typo'd year (2099) once set the import's high-water mark to 2099, and an event
    entered after an import but dated before its latest event fell under the mark: neither
    was ever imported, so the consent data table kept an opted-out number allowed."""
    engine = make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    migrate(engine)
    typo = CRM.vstack(consent([("C3", "sms", "opt_in", datetime(2099, 1, 1))]))
    assert import_changes(engine, typo, now=NOW)["imported"] == 5
    opt_out = consent([("C1", "sms", "opt_out", datetime(2026, 11, 30, 1, 0))])
    assert import_changes(engine, typo.vstack(opt_out), now=NOW)["imported"] == 1
    entered_late = consent([("C2", "sms", "opt_out", datetime(2026, 11, 29, 9, 0))])
    later = typo.vstack(opt_out).vstack(entered_late)
    assert import_changes(engine, later, now=NOW)["imported"] == 1
    assert import_changes(engine, later, now=NOW)["imported"] == 0  # ids: nothing twice
    stored = captured_events(engine).filter(pl.col("status") == "opt_out")
    assert sorted(stored["customer_id"].to_list()) == ["C1", "C2"]
    engine.dispose()
