"""Consent in Genesys and in the CRM: Architect data tables, export, import, the gap report.

Data tables (deterministic names, ``alerts.datatable_prefix``):

* ``<prefix>-consent``: one row per address (E.164 phone or lower-case e-mail), ``key`` the
  address, ``customerId``, ``smsAllowed``, ``emailAllowed``, ``optedOut``, folded with the
  planning rules (``tasks.consent.consent_state`` + ``channel_allowed``) from the source's
  consent events plus the ones this project captured. An address several customers share is
  allowed only if it is allowed for every one of them; a number that opted out by keyword
  without a known customer is ``optedOut`` with nothing allowed. An inbound or outbound
  Architect flow does a *Data Table Lookup* on the sender's address and stops on ``optedOut``.
* ``<prefix>-templates``: one row per template, ``key`` its name and ``version`` the first 12
  hex digits of the SHA-256 of its text, so a flow can tell which text the pipeline sends.

:func:`publish` creates a missing table with its schema, reads the rows back, then POSTs new
rows and PUTs changed ones only (a re-run with nothing changed writes nothing).

Round trip (:func:`export_changes`, :func:`import_changes`, :func:`contactable_gap`): consent
events captured since the last export go to the CRM (a CSV file or a SQLAlchemy table
``crm_consent_changes``); the CRM's consent events not imported yet (by id) come in as
``consent_events`` rows with source ``crm``; conflicts resolve by time because the fold takes
the latest event per customer and channel (ties: opt-out). The gap report lists numbers opted
out at the carrier (Twilio 21610 / ``RecipientOptedOut`` on an alert) or in Genesys (a keyword
opt-out, the DNC list) that the CRM still holds contactable.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tasks.alerts import Directory
from tasks.consent import channel_allowed, consent_state
from tasks.genesys import GenesysClient
from tasks.render import TemplateSet
from tasks.warehouse import read_frame, write_frame

__all__ = [
    "CONSENT_COLUMNS",
    "consent_rows",
    "contactable_gap",
    "export_changes",
    "import_changes",
    "publish",
    "table_body",
    "template_rows",
]

CONSENT_COLUMNS = {
    "customerId": "string",
    "smsAllowed": "boolean",
    "emailAllowed": "boolean",
    "optedOut": "boolean",
}
TEMPLATE_COLUMNS = {"version": "string"}


def table_body(name: str, columns: dict[str, str], description: str) -> dict[str, Any]:
    """The DataTable POST body: a JSON schema with ``key`` and the columns."""
    properties: dict[str, Any] = {
        "key": {"title": "key", "type": "string", "$id": "/properties/key", "displayOrder": 0}
    }
    for order, (column, kind) in enumerate(columns.items(), start=1):
        properties[column] = {
            "title": column,
            "type": kind,
            "$id": f"/properties/{column}",
            "displayOrder": order,
        }
    return {
        "name": name,
        "description": description,
        "schema": {
            "$schema": "http://json-schema.org/draft-04/schema#",
            "type": "object",
            "required": ["key"],
            "properties": properties,
            "additionalProperties": False,
        },
    }


def consent_rows(
    directory: Directory, captured: pl.DataFrame, *, email_requires_opt_in: bool = False
) -> pl.DataFrame:
    """One row per address: key, customerId, smsAllowed, emailAllowed, optedOut (pure).

    ``captured``: rows of the ``consent_events`` table (address, status, occurred_at_utc);
    the latest of a number no customer has, if an opt-out, gives an ``optedOut`` row."""
    state = directory.consent.select(
        "customer_id",
        pl.col("global_opt_out").alias("_out"),
        channel_allowed("sms", email_requires_opt_in=email_requires_opt_in).alias("_sms_ok"),
        channel_allowed("email", email_requires_opt_in=email_requires_opt_in).alias("_email_ok"),
    )
    people = directory.customers.join(state, on="customer_id", how="left").with_columns(
        pl.col("_sms_ok").fill_null(False),
        pl.col("_email_ok").fill_null(not email_requires_opt_in),
        pl.col("_out").fill_null(False),
    )
    shared = list(directory.shared_phones)
    phones = people.drop_nulls("phone_e164").select(
        pl.col("phone_e164").alias("key"),
        "customer_id",
        (pl.col("_sms_ok") & ~pl.col("phone_e164").is_in(shared)).alias("smsAllowed"),
        pl.lit(False).alias("emailAllowed"),
        pl.col("_out").alias("optedOut"),
    )
    mails = people.drop_nulls("email").select(
        pl.col("email").str.to_lowercase().alias("key"),
        "customer_id",
        pl.lit(False).alias("smsAllowed"),
        pl.col("_email_ok").alias("emailAllowed"),
        pl.col("_out").alias("optedOut"),
    )
    folded = (
        pl.concat([phones, mails])
        .group_by("key")
        .agg(
            pl.col("customer_id").sort().str.join(",").alias("customerId"),
            pl.col("smsAllowed").all(),
            pl.col("emailAllowed").all(),
            pl.col("optedOut").any(),
        )
    )
    if captured.height:
        orphans = (
            captured.filter(pl.col("status").is_not_null() & pl.col("address").is_not_null())
            .sort("occurred_at_utc", pl.col("status") == "opt_out")
            .group_by("address")
            .last()
            .filter(pl.col("status") == "opt_out")
            .select(pl.col("address").alias("key"))
            .join(folded.select("key"), on="key", how="anti")
        )
        folded = pl.concat(
            [
                folded,
                orphans.with_columns(
                    pl.lit("").alias("customerId"),
                    pl.lit(False).alias("smsAllowed"),
                    pl.lit(False).alias("emailAllowed"),
                    pl.lit(True).alias("optedOut"),
                ),
            ]
        )
    return folded.select("key", *CONSENT_COLUMNS).sort("key")


def template_rows(templates: TemplateSet) -> pl.DataFrame:
    """One row per template: key = name, version = sha256 of subject + body, 12 hex digits."""
    rows = [
        {
            "key": name,
            "version": hashlib.sha256(
                ((t.subject or "") + "\n" + t.body).encode("utf-8")
            ).hexdigest()[:12],
        }
        for name, t in sorted(templates.templates.items())
    ]
    return pl.DataFrame(rows, schema={"key": pl.String, "version": pl.String})


def publish(
    client: GenesysClient, name: str, columns: dict[str, str], rows: pl.DataFrame, description: str
) -> dict[str, int]:
    """Create the table if missing, then POST new rows and PUT changed ones only."""
    table = client.find_datatable(name) or client.create_datatable(
        table_body(name, columns, description)
    )
    remote = {str(r["key"]): r for r in client.datatable_rows(table["id"])}
    created = updated = 0
    for row in rows.to_dicts():
        row = {k: v for k, v in row.items() if v is not None}
        current = remote.get(str(row["key"]))
        if current is None:
            client.create_datatable_row(table["id"], row)
            created += 1
        elif {k: current.get(k) for k in row} != row:
            client.update_datatable_row(table["id"], row)
            updated += 1
    return {"rows": rows.height, "created": created, "updated": updated}


def captured_events(engine: Engine, *, since: datetime | None = None) -> pl.DataFrame:
    """Rows of the ``consent_events`` table (recorded after ``since`` when given)."""
    where = " where recorded_at_utc > :s" if since is not None else ""
    with engine.begin() as conn:
        return read_frame(
            conn,
            "select consent_event_id, customer_id, address, channel, status, keyword, action,"
            f" source, occurred_at_utc, recorded_at_utc from consent_events{where}"
            " order by recorded_at_utc, consent_event_id",
            {"s": since},
            schema={
                "consent_event_id": pl.String(),
                "customer_id": pl.String(),
                "address": pl.String(),
                "channel": pl.String(),
                "status": pl.String(),
                "keyword": pl.String(),
                "action": pl.String(),
                "source": pl.String(),
                "occurred_at_utc": pl.Datetime("us"),
                "recorded_at_utc": pl.Datetime("us"),
            },
        )


def _mark(engine: Engine, name: str) -> datetime | None:
    with engine.begin() as conn:
        row = conn.execute(
            sa.text("select synced_until_utc from consent_sync_state where name = :n"), {"n": name}
        ).first()
    return row[0] if row else None


def _set_mark(engine: Engine, name: str, until: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("delete from consent_sync_state where name = :n"), {"n": name})
        conn.execute(
            sa.text("insert into consent_sync_state values (:n, :t)"), {"n": name, "t": until}
        )


def export_changes(
    engine: Engine, *, now: datetime, folder: Path | None = None, target_url: str | None = None
) -> dict[str, Any]:
    """Consent changes (opt-out / opt-in, not HELP or custom keywords) recorded since the last
    export, excluding what came from the CRM itself, to a CSV file or a SQLAlchemy table."""
    since = _mark(engine, "export")
    changes = captured_events(engine, since=since).filter(
        pl.col("status").is_not_null() & (pl.col("source") != "crm")
    )
    frame = changes.select(
        "consent_event_id",
        "customer_id",
        "address",
        "channel",
        "status",
        "source",
        "occurred_at_utc",
    )
    where: str
    if target_url:
        from tasks.warehouse import make_engine

        target = make_engine(target_url)
        with target.begin() as conn:
            conn.exec_driver_sql(
                "create table if not exists crm_consent_changes (consent_event_id varchar"
                " primary key, customer_id varchar, address varchar, channel varchar,"
                " status varchar, source varchar, occurred_at_utc timestamp)"
            )
            known = read_frame(
                conn,
                "select consent_event_id from crm_consent_changes",
                schema={"consent_event_id": pl.String()},
            )
            write_frame(
                conn, "crm_consent_changes", frame.join(known, on="consent_event_id", how="anti")
            )
        target.dispose()
        where = "crm_consent_changes"
    else:
        out = (folder or Path("data/crm")) / f"consent-changes-{now:%Y%m%dT%H%M%S}.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.write_csv(out)
        where = str(out)
    _set_mark(engine, "export", now)
    return {"exported": frame.height, "to": where, "since": since}


def import_changes(engine: Engine, crm_events: pl.DataFrame, *, now: datetime) -> dict[str, Any]:
    """CRM consent events (normalized: customer_id, channel, status, occurred_at) not imported
    yet become ``consent_events`` rows with source ``crm``; the ids are deterministic, so a
    re-import adds nothing. Conflicts resolve by time in the fold (latest wins).

    Which events are new is decided by their ids, never by their time: a high-water mark on
    ``occurred_at`` is pushed to 2099 by one mistyped date, and misses an event entered after
    an import but dated before that import's latest one. The import mark only records when
    the last import ran (``since`` in the answer)."""
    since = _mark(engine, "import")
    fresh = crm_events.filter(pl.col("occurred_at").is_not_null())
    rows = fresh.select(
        (
            pl.lit("crm:")
            + pl.col("customer_id")
            + pl.lit(":")
            + pl.col("channel")
            + pl.lit(":")
            + pl.col("occurred_at").dt.strftime("%Y%m%dT%H%M%S%.f")
            + pl.lit(":")
            + pl.col("status")
        ).alias("consent_event_id"),
        "customer_id",
        pl.lit(None, pl.String).alias("address"),
        "channel",
        "status",
        pl.lit(None, pl.String).alias("keyword"),
        pl.col("status").alias("action"),
        pl.lit("crm").alias("source"),
        pl.col("occurred_at").alias("occurred_at_utc"),
        pl.lit(now).alias("recorded_at_utc"),
        pl.lit(None, pl.String).alias("inbound_message_id"),
    ).unique("consent_event_id")
    with engine.begin() as conn:
        known = read_frame(
            conn,
            "select consent_event_id from consent_events where source = 'crm'",
            schema={"consent_event_id": pl.String()},
        )
        new = rows.join(known, on="consent_event_id", how="anti")
        write_frame(conn, "consent_events", new)
    _set_mark(engine, "import", now)
    return {"imported": new.height, "since": since}


def contactable_gap(engine: Engine, directory: Directory, crm_events: pl.DataFrame) -> pl.DataFrame:
    """Numbers opted out at the carrier or in Genesys that the CRM still holds contactable by
    SMS: (address, customer_id, where) where is ``carrier`` (an alert or message failed with
    an opted-out reason) or ``genesys`` (a keyword opt-out or an entry on the DNC list)."""
    with engine.begin() as conn:
        keyword = read_frame(
            conn,
            "select address, 'genesys' as source_kind from consent_events"
            " where status = 'opt_out' and source like 'keyword:%' and address is not null"
            " union select address, 'genesys' from dnc_entries where kind = 'phone'"
            " union select to_address, 'carrier' from alerts where channel = 'sms'"
            " and state = 'failed' and state_reason like '%RecipientOptedOut%'",
            schema={"address": pl.String(), "source_kind": pl.String()},
        )
    crm = consent_state(
        crm_events.select("customer_id", "channel", "status", "occurred_at")
    ).select("customer_id", channel_allowed("sms", email_requires_opt_in=False).alias("_crm_sms"))
    people = directory.customers.select("customer_id", pl.col("phone_e164").alias("address"))
    return (
        keyword.unique()
        .join(people, on="address")
        .join(crm, on="customer_id")
        .filter(pl.col("_crm_sms"))
        .group_by("address", "customer_id")
        .agg(pl.col("source_kind").sort().unique().str.join(",").alias("where"))
        .sort("address", "customer_id")
    )
