"""Attempts: what Genesys says it attempted, per message, loaded into the ``attempts`` table.

Sources (``attempts.source``):

* ``contact_list_export``: the contact-list export CSV of an SMS list, read by column NAME
  (``inin-outbound-id``, ``SmsLastAttempt-<phone column>``, ``SmsLastResult-<phone column>``;
  order, extra columns, a BOM and a doubled-quote first header do not matter; BEHAVIOUR.md rows
  42-43). Only the last attempt per contact and column is in an export.
* ``contact_lookup``: contacts as the bulk lookup returns them (``latestSmsEvaluations`` /
  ``latestEmailEvaluations``: ``timestamp``, ``wrapupCodeId``); the way e-mail attempts are read.
* ``agentless``: MessageData of agentless sends (``GET /conversations/messages/{c}/messages/{m}``):
  ``timestamp``, ``status``, and ``providerMessageId`` = the carrier's message id (Twilio sid),
  the one source that carries it. ``wrapup_code`` holds the message ``status`` there.

Analytics conversation details (``POST /analytics/conversations/details/query``) are not read:
the bundled sandbox has no analytics route (BEHAVIOUR.md row 46), so nothing could test it.

Every row is keyed to the outbox by ``message_key`` (the contact id / outbox key; for a payment
alert sent agentless, its ``alerts.alert_key``, with its event's invoice) and takes
``customer_id``, ``invoice_ids``, ``channel``, ``to_address``, ``segments``, the Genesys ids and
``body_sha256`` (hex SHA-256 of the UTF-8 body) from the ``messages`` row. Fail closed: a row
with a result but no readable attempt time, or whose key the outbox does not know, becomes a
quarantine row (source ``attempts:<source>``, rules ``attempted_at_invalid``,
``message_unknown``), never an attempt; a row without any result is not an attempt (counted
``not_attempted``). Per source: rows in = attempts + quarantined + not attempted.

Loads are idempotent and incremental by day: stage, delete by the natural key
(``message_key``, ``attempted_at_utc``, ``source``), insert, in the caller's transaction.
Loading the same rows twice changes nothing; loading days one by one equals loading them at once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pendulum
import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tasks.errors import GenesysError
from tasks.genesys import GenesysClient
from tasks.outcomes import outcome_of
from tasks.sms import segment
from tasks.warehouse import read_frame, write_frame

__all__ = [
    "ATTEMPT_COLUMNS",
    "AttemptRows",
    "agentless_outcome",
    "attempts_from_agentless",
    "attempts_from_contacts",
    "attempts_from_export",
    "body_sha256",
    "build_attempts",
    "collect_attempts_from_genesys",
    "delete_days",
    "load_attempts",
    "outbox_for_attempts",
    "parse_attempt_times",
]

ATTEMPT_COLUMNS: dict[str, pl.DataType] = {
    "message_key": pl.String(),
    "customer_id": pl.String(),
    "invoice_ids": pl.String(),
    "channel": pl.String(),
    "source": pl.String(),
    "genesys_contact_list_id": pl.String(),
    "genesys_campaign_id": pl.String(),
    "genesys_conversation_id": pl.String(),
    "genesys_message_id": pl.String(),
    "attempted_at_utc": pl.Datetime("us"),
    "wrapup_code": pl.String(),
    "outcome_class": pl.String(),
    "to_address": pl.String(),
    "body_sha256": pl.String(),
    "segments": pl.Int32(),
    "carrier_message_id": pl.String(),
    "attempt_day": pl.Date(),
    "load_id": pl.String(),
    "loaded_at_utc": pl.Datetime("us"),
}
"""The ``attempts`` table's columns, in order, with their polars types."""

log = logging.getLogger(__name__)

NATURAL_KEY = ("message_key", "attempted_at_utc", "source")

_RAW = {
    "source_row": pl.Int64,
    "message_key": pl.String,
    "attempted_at": pl.String,
    "wrapup": pl.String,
    "carrier_message_id": pl.String,
    "conversation_id": pl.String,
    "message_id": pl.String,
}

_OUTBOX = (
    "message_key",
    "customer_id",
    "invoice_ids",
    "channel",
    "to_address",
    "body",
    "segments",
    "genesys_contact_list_id",
    "genesys_campaign_id",
    "genesys_conversation_id",
    "genesys_message_id",
)

AGENTLESS_SENT = frozenset({"sent", "delivery-success", "delivery-failed", "read", "published"})
"""Agentless message statuses meaning Genesys handed the message to the carrier."""


@dataclass(frozen=True)
class AttemptRows:
    """Attempts read from one source, the quarantine rows for that source, and the count of
    input rows that carried no attempt."""

    attempts: pl.DataFrame
    quarantine: pl.DataFrame
    rows_in: int
    not_attempted: int

    @property
    def accounted(self) -> bool:
        """rows in = attempts + quarantined + not attempted."""
        return self.rows_in == self.attempts.height + self.quarantine.height + self.not_attempted


def body_sha256(bodies: pl.Series) -> pl.Series:
    """Hex SHA-256 of each UTF-8 text (the hash carrier records carry for their body); one
    hash per distinct body."""
    mapping = {
        b: hashlib.sha256(b.encode("utf-8")).hexdigest() for b in bodies.drop_nulls().unique()
    }
    return bodies.replace_strict(mapping, default=None, return_dtype=pl.String)


def _parse_instant(value: str) -> datetime | None:
    try:
        parsed = pendulum.parse(value.strip(), tz="UTC", strict=False)
    except (ValueError, TypeError, OverflowError):
        return None
    if not isinstance(parsed, datetime):
        return None
    return parsed.astimezone(UTC).replace(tzinfo=None)


def parse_attempt_times(values: pl.Series) -> pl.Series:
    """ISO-8601 instants (any offset) as naive UTC; unreadable or blank values are null.

    One Python parse per distinct value (an export holds few distinct timestamps per minute).
    """
    distinct = values.drop_nulls().unique()
    mapping = {v: _parse_instant(v) for v in distinct.to_list() if v.strip()}
    return values.replace_strict(mapping, default=None, return_dtype=pl.Datetime("us")).alias(
        values.name
    )


def _norm_header(name: str) -> str:
    return name.replace("\ufeff", "").strip().strip('"').strip()


def attempts_from_export(
    rows: Sequence[dict[str, str]], phone_column: str = "Phone"
) -> tuple[pl.DataFrame, int]:
    """Raw attempts (source_row, message_key, attempted_at, wrapup) of an export's rows that
    carry a last result, and how many rows carried none. Columns are found by name."""
    wanted = {
        "inin-outbound-id": "id",
        f"SmsLastAttempt-{phone_column}": "at",
        f"SmsLastResult-{phone_column}": "result",
    }
    records = []
    empty = 0
    for index, row in enumerate(rows, start=1):
        named = {wanted[k]: v for raw, v in row.items() if (k := _norm_header(raw)) in wanted}
        result = (named.get("result") or "").strip()
        if not result:
            empty += 1
            continue
        records.append(
            (index, (named.get("id") or "").strip(), named.get("at"), result, None, None, None)
        )
    return pl.DataFrame(records, schema=_RAW, orient="row"), empty


def attempts_from_contacts(contacts: Sequence[dict[str, Any]]) -> tuple[pl.DataFrame, int]:
    """Raw attempts from looked-up contacts: one per SMS / e-mail evaluation (column), and how
    many contacts had none."""
    records = []
    empty = 0
    for index, contact in enumerate(contacts, start=1):
        found = [
            e
            for key in ("latestSmsEvaluations", "latestEmailEvaluations")
            for e in (contact.get(key) or {}).values()
            if e
        ]
        if not found:
            empty += 1
        for e in found:
            code = str(e.get("wrapupCodeId") or "").strip()
            records.append(
                (index, str(contact.get("id") or ""), e.get("timestamp"), code, None, None, None)
            )
    return pl.DataFrame(records, schema=_RAW, orient="row"), empty


def agentless_outcome(status: pl.Expr) -> pl.Expr:
    """Outcome class of an agentless message status: sent (handed to the carrier), failed,
    or null (``queued``: not attempted yet); anything else unknown."""
    s = status.str.strip_chars().str.to_lowercase()
    return (
        pl.when(s.is_in(list(AGENTLESS_SENT)))
        .then(pl.lit("sent"))
        .when(s == "failed")
        .then(pl.lit("failed"))
        .when(s == "queued")
        .then(pl.lit(None, pl.String))
        .otherwise(pl.lit("unknown"))
    )


def attempts_from_agentless(
    answers: Iterable[tuple[str, dict[str, Any]]],
) -> tuple[pl.DataFrame, int]:
    """Raw attempts from (message_key, MessageData) pairs of agentless sends; a message still
    ``queued`` is not an attempt yet."""
    records = []
    empty = 0
    for index, (key, data) in enumerate(answers, start=1):
        status = str(data.get("status") or "").strip()
        if not status or status.lower() == "queued":
            empty += 1
            continue
        records.append(
            (
                index,
                key,
                data.get("timestamp"),
                status,
                data.get("providerMessageId") or None,
                data.get("conversationId"),
                data.get("id"),
            )
        )
    return pl.DataFrame(records, schema=_RAW, orient="row"), empty


_ALERT_OUTBOX = {
    "message_key": "a.alert_key",
    "customer_id": "a.customer_id",
    "invoice_ids": "e.invoice_id",
    "channel": "a.channel",
    "to_address": "a.to_address",
    "body": "a.body",
    "segments": "cast(null as integer)",
    "genesys_contact_list_id": "cast(null as varchar)",
    "genesys_campaign_id": "cast(null as varchar)",
    "genesys_conversation_id": "a.genesys_conversation_id",
    "genesys_message_id": "a.genesys_message_id",
}
"""The outbox columns of a payment alert (``alerts`` x ``alert_events``): its alert_key is its
message key, its event's invoice its invoice_ids; no campaign or list (agentless)."""


def outbox_for_attempts(conn: Connection, keys: Sequence[str]) -> pl.DataFrame:
    """The outbox columns attempts take, for ``keys``: reminders from ``messages``, and payment
    alerts from ``alerts`` (a key both tables hold is the reminder's), their SMS segment count
    computed from the body as the reminder's was at render time."""
    conn.exec_driver_sql("drop table if exists stage_attempt_keys")
    conn.exec_driver_sql("create temporary table stage_attempt_keys (message_key varchar)")
    write_frame(
        conn, "stage_attempt_keys", pl.DataFrame({"message_key": list(dict.fromkeys(keys))})
    )
    frame = read_frame(
        conn,
        "select " + ", ".join(f"m.{c}" for c in _OUTBOX) + " from messages m"
        " join stage_attempt_keys k on k.message_key = m.message_key"
        " union all select "
        + ", ".join(f"{_ALERT_OUTBOX[c]} as {c}" for c in _OUTBOX)
        + " from alerts a join stage_attempt_keys k on k.message_key = a.alert_key"
        " join alert_events e on e.event_id = a.event_id"
        " where not exists (select 1 from messages m where m.message_key = a.alert_key)",
        schema={c: (pl.Int32() if c == "segments" else pl.String()) for c in _OUTBOX},
    )
    alert_sms = (
        pl.col("segments").is_null() & (pl.col("channel") == "sms") & pl.col("body").is_not_null()
    )
    if frame.filter(alert_sms).height == 0:
        return frame
    counts = [
        segment(b).count if sms else None for b, sms in frame.select("body", alert_sms).rows()
    ]
    return frame.with_columns(
        pl.coalesce("segments", pl.Series(counts, dtype=pl.Int32)).alias("segments")
    )


def build_attempts(
    raw: pl.DataFrame,
    outbox: pl.DataFrame,
    *,
    source: str,
    load_id: str,
    loaded_at: datetime,
    run_id: str,
    rows_in: int,
    not_attempted: int,
) -> AttemptRows:
    """Typed ``attempts`` rows from raw attempts and their outbox rows, with the quarantine
    rows of those that fail closed (unknown message key, unreadable attempt time)."""
    frame = raw.with_columns(parse_attempt_times(raw["attempted_at"]).alias("attempted_at_utc"))
    frame = frame.join(outbox, on="message_key", how="left", coalesce=True)
    rule = (
        pl.when(pl.col("channel").is_null())
        .then(pl.lit("message_unknown"))
        .when(pl.col("attempted_at_utc").is_null())
        .then(pl.lit("attempted_at_invalid"))
    )
    frame = frame.with_columns(rule.alias("rule"))
    bad = frame.filter(pl.col("rule").is_not_null())
    good = frame.filter(pl.col("rule").is_null())
    if source == "agentless":
        outcome = agentless_outcome(pl.col("wrapup"))
    else:
        outcome = outcome_of(pl.col("wrapup"))
    attempts = good.with_columns(
        pl.lit(source).alias("source"),
        pl.col("wrapup").alias("wrapup_code"),
        outcome.alias("outcome_class"),
        body_sha256(good["body"]).alias("body_sha256"),
        pl.coalesce("conversation_id", "genesys_conversation_id").alias("genesys_conversation_id"),
        pl.coalesce("message_id", "genesys_message_id").alias("genesys_message_id"),
        pl.col("attempted_at_utc").dt.date().alias("attempt_day"),
        pl.lit(load_id).alias("load_id"),
        pl.lit(loaded_at).cast(pl.Datetime("us")).alias("loaded_at_utc"),
    )
    attempts = (
        attempts.select([pl.col(c).cast(t) for c, t in ATTEMPT_COLUMNS.items()])
        .unique(list(NATURAL_KEY), keep="last", maintain_order=True)
        .sort(list(NATURAL_KEY))
    )
    reasons = {
        "message_unknown": "the contact id is not a message key of the outbox",
        "attempted_at_invalid": "a result without a readable attempt time",
    }
    quarantine = bad.select(
        pl.lit(run_id).alias("run_id"),
        pl.lit(f"attempts:{source}").alias("source"),
        pl.col("source_row").cast(pl.Int32),
        pl.col("message_key").alias("record_key"),
        pl.lit("row").alias("scope"),
        pl.col("rule"),
        pl.col("rule").replace_strict(reasons, return_dtype=pl.String).alias("reason"),
        pl.struct(
            pl.col("attempted_at"),
            pl.col("message_key").alias("id"),
            pl.col("wrapup").alias("result"),
        )
        .struct.json_encode()
        .alias("raw_values"),
    )
    return AttemptRows(attempts, quarantine, rows_in=rows_in, not_attempted=not_attempted)


def load_attempts(conn: Connection, attempts: pl.DataFrame) -> int:
    """Merge ``attempts`` into the table by natural key (stage, delete, insert) inside the
    caller's transaction; returns the rows written. Idempotent."""
    if attempts.height == 0:
        return 0
    frame = attempts.select([pl.col(c).cast(t) for c, t in ATTEMPT_COLUMNS.items()]).unique(
        list(NATURAL_KEY), keep="last", maintain_order=True
    )
    conn.exec_driver_sql("drop table if exists stage_attempts")
    conn.exec_driver_sql(
        "create temporary table stage_attempts as select * from attempts where 1 = 0"
    )
    write_frame(conn, "stage_attempts", frame)
    # attempted_at_utc is part of the key, so only rows inside the stage's time range can
    # match: the range as constants lets the scan skip row groups (zone maps / the index)
    bounds = frame.select(
        pl.col("attempted_at_utc").min().alias("lo"), pl.col("attempted_at_utc").max().alias("hi")
    ).row(0, named=True)
    conn.execute(
        sa.text(
            "delete from attempts where attempts.attempted_at_utc >= :lo"
            " and attempts.attempted_at_utc <= :hi"
            " and exists (select 1 from stage_attempts s"
            " where s.message_key = attempts.message_key"
            " and s.attempted_at_utc = attempts.attempted_at_utc and s.source = attempts.source)"
        ),
        bounds,
    )
    conn.exec_driver_sql("insert into attempts select * from stage_attempts")
    return frame.height


def _collect(
    conn: Connection,
    raw: pl.DataFrame,
    not_attempted: int,
    *,
    source: str,
    load_id: str,
    loaded_at: datetime,
    run_id: str,
) -> AttemptRows:
    rows = build_attempts(
        raw,
        outbox_for_attempts(conn, raw["message_key"].to_list()),
        source=source,
        load_id=load_id,
        loaded_at=loaded_at,
        run_id=run_id,
        rows_in=raw["source_row"].n_unique() + not_attempted,
        not_attempted=not_attempted,
    )
    load_attempts(conn, rows.attempts)
    write_frame(conn, "quarantine", rows.quarantine)
    return rows


def collect_attempts_from_genesys(
    engine: Engine,
    client: GenesysClient,
    *,
    now: datetime,
    run_id: str,
    lookback_days: int = 7,
    phone_column: str = "Phone",
) -> dict[str, int]:
    """Read the attempts of every message handed to Genesys whose local send date is within
    ``lookback_days`` of ``now``: one export per SMS contact list, one bulk lookup per e-mail
    list, one message lookup per agentless send (reminders, and the payment alerts of
    ``alerts`` accepted by Genesys since then: the carrier bills those too). Loads them
    (idempotent) and writes the quarantine rows; returns counts per source. A Genesys error
    on one list is logged and that list is skipped (read again by the next run)."""
    since = (now - timedelta(days=lookback_days)).date()
    with engine.begin() as conn:
        handed = read_frame(
            conn,
            "select message_key, channel, genesys_contact_list_id, genesys_conversation_id,"
            " genesys_message_id from messages where local_send_date >= :since"
            " and state not in ('planned', 'ready')"
            " and (genesys_contact_list_id is not null or genesys_message_id is not null)",
            {"since": since},
            schema={
                "message_key": pl.String(),
                "channel": pl.String(),
                "genesys_contact_list_id": pl.String(),
                "genesys_conversation_id": pl.String(),
                "genesys_message_id": pl.String(),
            },
        )
    counts = {"contact_list_export": 0, "contact_lookup": 0, "agentless": 0, "quarantined": 0}
    load_id = f"{run_id}:{now.isoformat()}"
    campaigns = handed.filter(pl.col("genesys_contact_list_id").is_not_null())
    for (channel, list_id), part in campaigns.group_by(
        ["channel", "genesys_contact_list_id"], maintain_order=True
    ):
        try:
            if channel == "sms":
                source = "contact_list_export"
                raw, empty = attempts_from_export(
                    client.export_contact_list(str(list_id)), phone_column
                )
            else:
                source = "contact_lookup"
                contacts = client.get_contacts(str(list_id), part["message_key"].to_list())
                raw, empty = attempts_from_contacts(contacts)
        except GenesysError as exc:
            log.warning("could not read the attempts of list %s: %s", list_id, exc)
            continue
        with engine.begin() as conn:
            rows = _collect(
                conn, raw, empty, source=source, load_id=load_id, loaded_at=now, run_id=run_id
            )
        counts[source] += rows.attempts.height
        counts["quarantined"] += rows.quarantine.height
    with engine.begin() as conn:
        alerts = read_frame(
            conn,
            "select alert_key as message_key, channel, cast(null as varchar)"
            " as genesys_contact_list_id, genesys_conversation_id, genesys_message_id"
            " from alerts where accepted_at_utc >= :since",
            {"since": datetime.combine(since, datetime.min.time())},
            schema=dict(handed.schema),
        )
    agentless = pl.concat(
        [handed, alerts.filter(~pl.col("message_key").is_in(handed["message_key"]))]
    ).filter(
        pl.col("genesys_contact_list_id").is_null()
        & pl.col("genesys_message_id").is_not_null()
        & pl.col("genesys_conversation_id").is_not_null()
    )
    answers: list[tuple[str, dict[str, Any]]] = []
    for key, conversation, message in agentless.select(
        "message_key", "genesys_conversation_id", "genesys_message_id"
    ).iter_rows():
        try:
            answers.append((key, client.get_message(conversation, message)))
        except GenesysError as exc:
            log.warning("could not read agentless message %s: %s", message, exc)
    if answers:
        raw, empty = attempts_from_agentless(answers)
        with engine.begin() as conn:
            rows = _collect(
                conn,
                raw,
                empty,
                source="agentless",
                load_id=load_id,
                loaded_at=now,
                run_id=run_id,
            )
        counts["agentless"] += rows.attempts.height
        counts["quarantined"] += rows.quarantine.height
    return counts


def delete_days(conn: Connection, days: Sequence[date], *, source: str | None = None) -> int:
    """Delete the attempts of ``days`` (optionally one source), for a rebuild of those days."""
    if not days:
        return 0
    params: dict[str, Any] = {f"d{i}": d for i, d in enumerate(days)}
    where = "attempt_day in (" + ", ".join(f":d{i}" for i in range(len(days))) + ")"
    if source is not None:
        where += " and source = :source"
        params["source"] = source
    result = conn.execute(sa.text(f"delete from attempts where {where}"), params)
    return int(result.rowcount or 0)
