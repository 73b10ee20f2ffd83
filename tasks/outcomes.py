"""Outcomes: read what Genesys did with pushed contacts back into the outbox.

SMS lists are read through the contact-list export (one file per list, however large);
e-mail contacts through the bulk contact lookup (the export has no per-e-mail result column).
A contact with a last attempt becomes ``delivered`` when its wrap-up code says so, otherwise
``failed`` with the wrap-up code kept in ``genesys_error_code``. Contacts not attempted yet
stay ``pushed``. Re-running is harmless: only ``pushed`` messages move.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy.engine import Engine

from tasks.genesys import GenesysClient
from tasks.outbox import messages_in, transition
from tasks.push import names_for
from tasks.settings import GenesysSettings

__all__ = ["DELIVERED_CODES", "collect_outcomes_from_genesys", "outcomes_from_export"]

DELIVERED_CODES = frozenset({"ININ-OUTBOUND-MESSAGE-DELIVERED", "ININ-OUTBOUND-MESSAGE-SENT"})


def outcomes_from_export(rows: list[dict[str, str]], phone_column: str = "Phone") -> pl.DataFrame:
    """(message_key, attempted_at, wrapup) for the attempted rows of a contact-list export."""
    records = [
        (
            r.get("inin-outbound-id"),
            r.get(f"SmsLastAttempt-{phone_column}"),
            r.get(f"SmsLastResult-{phone_column}"),
        )
        for r in rows
        if r.get(f"SmsLastResult-{phone_column}")
    ]
    return pl.DataFrame(
        records,
        schema={"message_key": pl.String, "attempted_at": pl.String, "wrapup": pl.String},
        orient="row",
    )


def _from_contacts(contacts: list[dict[str, Any]], key: str) -> pl.DataFrame:
    records = []
    for contact in contacts:
        for evaluation in (contact.get(key) or {}).values():
            records.append(
                (contact["id"], evaluation.get("timestamp"), evaluation.get("wrapupCodeId"))
            )
    return pl.DataFrame(
        records,
        schema={"message_key": pl.String, "attempted_at": pl.String, "wrapup": pl.String},
        orient="row",
    )


def collect_outcomes_from_genesys(
    engine: Engine, client: GenesysClient, genesys: GenesysSettings, *, now: datetime, run_id: str
) -> dict[str, int]:
    """Move attempted ``pushed`` messages to ``delivered`` / ``failed``; returns counts."""
    with engine.begin() as conn:
        pushed = messages_in(conn, ("pushed",))
    counts = {"delivered": 0, "failed": 0, "not_attempted": 0}
    if pushed.height == 0:
        return counts
    found = []
    for (channel,), part in pushed.group_by(["channel"], maintain_order=True):
        contact_list = client.find_contact_list(names_for(str(channel), genesys)["contact_list"])
        if contact_list is None:
            continue
        if channel == "sms":
            found.append(outcomes_from_export(client.export_contact_list(contact_list["id"])))
        else:
            contacts = client.get_contacts(contact_list["id"], part["message_key"].to_list())
            found.append(_from_contacts(contacts, "latestEmailEvaluations"))
    if not found:
        counts["not_attempted"] = pushed.height
        return counts
    attempts = pl.concat(found).join(pushed.select("message_key"), on="message_key")
    delivered = attempts.filter(pl.col("wrapup").is_in(list(DELIVERED_CODES)))
    failed = attempts.filter(~pl.col("wrapup").is_in(list(DELIVERED_CODES)))
    with engine.begin() as conn:
        counts["delivered"] = transition(
            conn,
            delivered.select("message_key", pl.col("wrapup").alias("detail")),
            from_states=("pushed",),
            to_state="delivered",
            run_id=run_id,
            now=now,
        )
        counts["failed"] = transition(
            conn,
            failed.select(
                "message_key",
                pl.col("wrapup").alias("detail"),
                pl.col("wrapup").alias("genesys_error_code"),
            ),
            from_states=("pushed",),
            to_state="failed",
            run_id=run_id,
            now=now,
        )
    counts["not_attempted"] = pushed.height - attempts.height
    return counts
