"""Outcomes: read what Genesys did with pushed contacts back into the outbox, then make sure
Genesys can never message them again.

Reading: SMS lists through the contact-list export (one file per list, however large; parsed
by column name, whatever the order, extra columns, BOM or quoting of the header); e-mail
contacts through the bulk contact lookup. A contact with a last attempt gets the state of its
wrap-up code (:func:`outcome_of`):

* ``sent``: ``OUTBOUND-MESSAGE-SENT``, handed off to the carrier. Not delivered: delivery is a
  carrier fact (issue 9); nothing here writes ``delivered``.
* ``failed``: a known failure code (``OUTBOUND-MESSAGE-FAILED``,
  ``OUTBOUND-MAX-MESSAGE-LENGTH-EXCEEDED``, ``OUTBOUND-MESSAGE-BLANK``, ...).
* ``skipped``: a known skip code (on a DNC list, not callable, zone blocked, ...); not an
  attempt, the reason is kept.
* ``unknown``: any other code (including ``OUTBOUND-STUCK-CONTACT``, which does not say
  whether the message left). Counted as an attempt, never as failed.

The code is kept in ``genesys_wrapup_code`` in every case.

Then, second guard after the rule set (see :mod:`tasks.push`): every attempted contact is made
uncontactable (``callable=false``, SMS/Email ``contactable=false``) and deleted (a delete may be
refused silently while the list is in use; the contact is uncontactable anyway). Contacts
never attempted whose window has ended are made uncontactable, read back, and only when the
read-back shows them uncontactable and still not attempted do they become ``expired``; if the
read-back shows an attempt, that outcome is recorded instead. Re-running is harmless: only
``pushed`` messages move.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy.engine import Engine

from tasks.errors import GenesysError
from tasks.genesys import GenesysClient, attempted, is_uncontactable
from tasks.outbox import messages_in, transition

__all__ = [
    "FAILED_CODES",
    "SENT_CODES",
    "SKIPPED_CODES",
    "ListExport",
    "apply_outcomes",
    "collect_outcomes_from_genesys",
    "export_outcomes",
    "outcome_of",
    "outcomes_from_contacts",
    "outcomes_from_export",
    "record_attempts",
    "settle_uncontactable",
]

log = logging.getLogger(__name__)

SENT_CODES = frozenset(
    {
        "OUTBOUND-MESSAGE-SENT",
        # the sandbox's legacy vocabulary (wrapup_codes=legacy): invented, never seen on a
        # real org, kept so the client is correct under both readings
        "ININ-OUTBOUND-MESSAGE-SENT",
        "ININ-OUTBOUND-MESSAGE-DELIVERED",
    }
)
"""Wrap-up codes meaning Genesys handed the message off (state ``sent``)."""

FAILED_CODES = frozenset(
    {
        "OUTBOUND-MESSAGE-FAILED",
        "OUTBOUND-MAX-MESSAGE-LENGTH-EXCEEDED",
        "OUTBOUND-MESSAGE-BLANK",
        "ININ-OUTBOUND-MESSAGE-UNDELIVERED",
        "ININ-OUTBOUND-INVALID-PHONE-NUMBER",
        "ININ-OUTBOUND-RECIPIENT-OPTED-OUT",
        "ININ-OUTBOUND-MESSAGE-BOUNCED",
    }
)
"""Wrap-up codes meaning the attempt failed (state ``failed``)."""

SKIPPED_CODES: dict[str, str] = {
    "ININ-OUTBOUND-ON-DO-NOT-CALL-LIST": "dnc",
    "ININ-OUTBOUND-CONTACT-UNCALLABLE": "not_callable",
    "ININ-OUTBOUND-NUMBER-UNCALLABLE": "not_callable",
    "ININ-OUTBOUND-CONTACT-UNCONTACTABLE": "not_contactable",
    "ININ-OUTBOUND-ZONE-BLOCKED": "time_zone",
    "ININ-OUTBOUND-RULE-SKIPPED": "rule_skipped",
}
"""Wrap-up codes meaning Genesys skipped the contact without sending (state ``skipped``,
the reason in ``state_reason``)."""

ALL_KNOWN_CODES = (
    *sorted(SENT_CODES | FAILED_CODES | set(SKIPPED_CODES)),
    "OUTBOUND-STUCK-CONTACT",
)
"""Every code the pipeline knows (the rule set marks a contact uncontactable on any of them)."""

_ATTEMPT_SCHEMA = {"message_key": pl.String, "attempted_at": pl.String, "wrapup": pl.String}


def outcome_of(wrapup: pl.Expr) -> pl.Expr:
    """The outbox state for a wrap-up code column: sent / failed / skipped / unknown."""
    code = wrapup.str.strip_chars().str.to_uppercase()
    return (
        pl.when(code.is_in(list(SENT_CODES)))
        .then(pl.lit("sent"))
        .when(code.is_in(list(FAILED_CODES)))
        .then(pl.lit("failed"))
        .when(code.is_in(list(SKIPPED_CODES)))
        .then(pl.lit("skipped"))
        .otherwise(pl.lit("unknown"))
    )


def _detail(frame: pl.DataFrame) -> pl.Expr:
    code = pl.col("wrapup").str.strip_chars().str.to_uppercase()
    return (
        pl.when(pl.col("state") == "skipped")
        .then(
            pl.lit("skipped by Genesys: ")
            + code.replace_strict(SKIPPED_CODES, default="other", return_dtype=pl.String)
        )
        .when(pl.col("state") == "unknown")
        .then(pl.lit("wrap-up code not known to the pipeline: ") + pl.col("wrapup"))
        .otherwise(pl.col("wrapup"))
    )


def _norm_header(name: str) -> str:
    return name.replace("\ufeff", "").strip().strip('"').strip()


def outcomes_from_export(rows: list[dict[str, str]], phone_column: str = "Phone") -> pl.DataFrame:
    """(message_key, attempted_at, wrapup) for the attempted rows of a contact-list export.

    Columns are found by name (order varies between orgs; extra columns are ignored), with
    BOM, whitespace and doubled quotes stripped from header names.
    """
    wanted = {
        "inin-outbound-id": "id",
        f"SmsLastAttempt-{phone_column}": "at",
        f"SmsLastResult-{phone_column}": "result",
    }
    records = []
    for row in rows:
        named = {wanted[k]: v for raw, v in row.items() if (k := _norm_header(raw)) in wanted}
        result = (named.get("result") or "").strip()
        if result and named.get("id"):
            records.append((named["id"], named.get("at") or None, result))
    return pl.DataFrame(records, schema=_ATTEMPT_SCHEMA, orient="row")


def outcomes_from_contacts(contacts: list[dict[str, Any]]) -> pl.DataFrame:
    """(message_key, attempted_at, wrapup) from contacts as the bulk lookup returns them: the
    latest SMS and e-mail evaluations; the newest one per contact wins."""
    records = [
        (contact["id"], e.get("timestamp"), e.get("wrapupCodeId") or "")
        for contact in contacts
        for e in attempted(contact)
    ]
    frame = pl.DataFrame(records, schema=_ATTEMPT_SCHEMA, orient="row")
    return frame.sort("attempted_at", nulls_last=False).unique(
        "message_key", keep="last", maintain_order=True
    )


def record_attempts(
    engine: Engine,
    attempts: pl.DataFrame,
    *,
    run_id: str,
    now: datetime,
    from_states: tuple[str, ...] = ("pushed",),
) -> dict[str, int]:
    """Move messages to the state of their wrap-up code; returns counts per state."""
    counts = {"sent": 0, "failed": 0, "skipped": 0, "unknown": 0}
    if attempts.height == 0:
        return counts
    frame = attempts.with_columns(outcome_of(pl.col("wrapup")).alias("state"))
    frame = frame.with_columns(_detail(frame).alias("detail"))
    with engine.begin() as conn:
        for state in counts:
            part = frame.filter(pl.col("state") == state)
            counts[state] = transition(
                conn,
                part.select("message_key", "detail", pl.col("wrapup").alias("genesys_wrapup_code")),
                from_states=from_states,
                to_state=state,
                run_id=run_id,
                now=now,
            )
    return counts


def _contact_data(messages: pl.DataFrame) -> list[dict[str, Any]]:
    from tasks.push import contact_rows

    out: list[dict[str, Any]] = []
    for (channel,), part in messages.group_by(["channel"], maintain_order=True):
        out += contact_rows(part, str(channel))
    return out


def settle_uncontactable(
    client: GenesysClient, contact_list_id: str, messages: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Make the contacts of ``messages`` uncontactable and read them back.

    Returns (verified, attempts, unverified): ``verified`` message keys that Genesys shows
    uncontactable and never attempted, or that are not in the list at all (nothing there can
    send them); ``attempts`` (message_key, attempted_at, wrapup) of those the read-back shows
    attempted; ``unverified`` keys that still look contactable. A Genesys error leaves every
    key unverified.
    """
    keys = messages["message_key"].to_list()
    empty = pl.DataFrame(schema={"message_key": pl.String})
    try:
        client.mark_uncontactable(contact_list_id, _contact_data(messages))
        back = client.get_contacts(contact_list_id, keys)
    except GenesysError as exc:
        log.warning("could not make %d contacts uncontactable: %s", len(keys), exc)
        return empty, pl.DataFrame(schema=_ATTEMPT_SCHEMA), messages.select("message_key")
    found = {c["id"]: c for c in back}
    tried = [c for c in back if attempted(c)]
    attempts = outcomes_from_contacts(tried)
    verified = [
        k
        for k in keys
        if k not in found or (is_uncontactable(found[k]) and not attempted(found[k]))
    ]
    unverified = [
        k for k in keys if k in found and not attempted(found[k]) and not is_uncontactable(found[k])
    ]
    return (
        pl.DataFrame({"message_key": verified}, schema={"message_key": pl.String}),
        attempts,
        pl.DataFrame({"message_key": unverified}, schema={"message_key": pl.String}),
    )


def _finish_attempted(client: GenesysClient, contact_list_id: str, messages: pl.DataFrame) -> None:
    """Second guard: attempted contacts uncontactable, then deleted (a refused delete is
    fine: the contact is uncontactable)."""
    if messages.height == 0:
        return
    try:
        client.mark_uncontactable(contact_list_id, _contact_data(messages))
        client.delete_contacts(contact_list_id, messages["message_key"].to_list())
    except GenesysError as exc:
        log.warning("could not finish %d attempted contacts: %s", messages.height, exc)


@dataclass
class ListExport:
    """The outcomes read from one contact list: the pushed messages recorded in it and the
    attempts Genesys shows for them (None when the list could not be read)."""

    channel: str
    contact_list_id: str
    messages: pl.DataFrame
    attempts: pl.DataFrame | None


def _empty_counts() -> dict[str, int]:
    counts = {"sent": 0, "failed": 0, "skipped": 0, "unknown": 0, "expired": 0}
    return counts | {"not_attempted": 0, "unverified": 0}


def export_outcomes(engine: Engine, client: GenesysClient) -> list[ListExport]:
    """Read the attempts of every ``pushed`` message from Genesys, per contact list: an SMS
    list's export (wrap-up columns), an e-mail list's contacts. Writes nothing; a list that
    cannot be read is kept with ``attempts`` None (its messages count as not attempted)."""
    with engine.begin() as conn:
        pushed = messages_in(conn, ("pushed",))
    if pushed.height == 0:
        return []
    pushed = pushed.filter(pl.col("genesys_contact_list_id").is_not_null())
    exports = []
    for (channel, list_id), part in pushed.group_by(
        ["channel", "genesys_contact_list_id"], maintain_order=True
    ):
        list_id = str(list_id)
        attempts: pl.DataFrame | None
        try:
            if channel == "sms":
                attempts = outcomes_from_export(client.export_contact_list(list_id)).join(
                    part.select("message_key"), on="message_key"
                )
            else:
                attempts = outcomes_from_contacts(
                    client.get_contacts(list_id, part["message_key"].to_list())
                )
        except GenesysError as exc:
            log.warning("could not read outcomes of list %s: %s", list_id, exc)
            attempts = None
        exports.append(ListExport(str(channel), list_id, part, attempts))
    return exports


def apply_outcomes(
    engine: Engine,
    client: GenesysClient,
    exports: list[ListExport],
    *,
    now: datetime,
    run_id: str,
) -> dict[str, int]:
    """Record the exported attempts (``pushed`` -> sent / failed / skipped / unknown), finish
    the attempted contacts in Genesys, and expire never-attempted ones whose window has ended
    once Genesys confirms them uncontactable (read back: an attempt found then is recorded
    instead). Returns counts per state plus ``not_attempted`` and ``unverified``."""
    counts = _empty_counts()
    for export in exports:
        list_id, part, attempts = export.contact_list_id, export.messages, export.attempts
        if attempts is None:
            counts["not_attempted"] += part.height
            continue
        for state, n in record_attempts(
            engine, attempts, run_id=run_id, now=now, from_states=("pushed",)
        ).items():
            counts[state] += n
        _finish_attempted(
            client, list_id, part.join(attempts.select("message_key"), on="message_key")
        )
        rest = part.join(attempts.select("message_key"), on="message_key", how="anti")
        over = rest.filter(pl.col("window_end_utc") <= pl.lit(now))
        counts["not_attempted"] += rest.height - over.height
        if over.height:
            verified, late, unverified = settle_uncontactable(client, list_id, over)
            for state, n in record_attempts(
                engine, late, run_id=run_id, now=now, from_states=("pushed",)
            ).items():
                counts[state] += n
            with engine.begin() as conn:
                counts["expired"] += transition(
                    conn,
                    verified,
                    from_states=("pushed",),
                    to_state="expired",
                    run_id=run_id,
                    now=now,
                    detail="window over, never attempted: uncontactable in Genesys (verified)",
                )
            counts["unverified"] += unverified.height
            late_keys = late.select("message_key")
            _finish_attempted(client, list_id, over.join(late_keys, on="message_key"))
            if verified.height:
                try:
                    client.delete_contacts(list_id, verified["message_key"].to_list())
                except GenesysError as exc:
                    log.warning("could not delete %d expired contacts: %s", verified.height, exc)
    return counts


def collect_outcomes_from_genesys(
    engine: Engine,
    client: GenesysClient,
    genesys: Any = None,
    *,
    now: datetime,
    run_id: str,
) -> dict[str, int]:
    """Move attempted ``pushed`` messages to sent / failed / skipped / unknown, finish their
    contacts in Genesys, and expire never-attempted ones whose window has ended (verified):
    :func:`export_outcomes` then :func:`apply_outcomes`. Returns counts per state plus
    ``not_attempted`` and ``unverified``."""
    return apply_outcomes(engine, client, export_outcomes(engine, client), now=now, run_id=run_id)
