"""Real-time payment alerts: webhook checks, decisions, the alert outbox, sends and polls.

Webhook contract (billing system -> ``POST /events``)::

    X-Reminders-Timestamp: <unix seconds>
    X-Reminders-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>
    {"event_id": "evt_1", "type": "payment_received" | "payment_failed",
     "customer_id": "C1", "invoice_id": "I1", "amount": "12.50", "currency": "USD",
     "occurred_at": "2026-11-23T14:00:00Z"}

Checks, in order (answer, reason code): body over ``alerts.max_body_bytes`` (413
``body_too_large``); no or malformed signature headers (401 ``signature_missing`` /
``timestamp_invalid``); timestamp outside ``alerts.tolerance_seconds`` either way (401
``timestamp_outside_tolerance``); signature mismatch, compared in constant time (401
``signature_invalid``); body not a JSON object with valid fields (422 ``event_invalid`` with the
field named: ``amount`` a plain decimal with no more decimals than the currency has, an ISO 4217
currency, ``occurred_at`` ISO-8601 with an offset); an event id already stored (409
``event_replayed``). An accepted event is committed to ``alert_events`` before the 202 answer.

Per event (:func:`decide_alerts`, pure): the customer (``customer_unknown``), then consent with
the planning rules (``tasks.consent.consent_state`` + ``channel_allowed``, the same code the
planner uses: ``consent_unclear``, ``opted_out``, ``no_channel`` when no channel is allowed with
a usable address; ``phone_shared`` numbers take no SMS), the channel (``preferred_channel`` if
allowed, else ``cadence.channel_order``), the recipient's zones (``timezone_unknown``,
``no_common_window``) and ``alerts.window`` (recipient-local, 08:00-21:00 by default): outside it
the alert is ``held`` until the window opens. Rendering uses the templates
``<channel>_payment_received|failed`` and blocks ``pci_pan`` / ``sms_too_long`` as planning does.

Alert states (``alerts`` table, every change in ``alert_log``)::

    held ─► ready ─► sending ─► accepted ─► delivered | sent | failed
      (window)  │        │          │           (polled, 60 s timeout)
                │        │          ├─► ready   (failed, transient: retried, attempts < max)
                │        │          └─► failed + e-mail alert (permanent SMS failure)
                │        ├─► unknown (connection lost after the request, or killed in flight)
                │        │      └─ settled by lookup (:func:`settle_unknown`): found ─►
                │        │         accepted; not found after the consistency delay ─► ready
                │        │         (once); ambiguous, or not found after that resend ─► review
                │        ├─► ready   (503 / 429 after the client's budget: not processed)
                │        └─► failed  (4xx; SMS falls back to e-mail)
                └─► excluded (decided not to send, reason kept)

``sending`` is committed (the intent) before the call. The service stores a fresh event,
decides it and commits its intent in the event's group commit (:func:`accept_events`) and
sends at once; the worker (:func:`process_events` + :func:`send_due`) takes what that path
left. A row found ``sending`` at start-up was killed in flight and becomes ``unknown``: the
call may or may not have reached Genesys, and the agentless API has no idempotency key, so
it is looked up, never sent again blind. ``review`` rows wait for a person
(:func:`unsettled_report`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import polars as pl
import sqlalchemy as sa
from babel.numbers import get_currency_precision, list_currencies
from sqlalchemy.engine import Engine

from tasks.consent import channel_allowed, consent_state
from tasks.errors import GenesysError
from tasks.genesys import (
    GenesysClient,
    OutcomeUnknown,
    RateLimited,
    RequestRejected,
    TransientServerError,
)
from tasks.outbox import exclude_decisions, messages_in, transition
from tasks.pci import contains_pan
from tasks.render import GENESYS_SMS_MAX_CHARS, TemplateSet, _locale, format_money
from tasks.settings import AlertSettings, CadenceSettings, GenesysSettings, RenderSettings
from tasks.sms import segment
from tasks.stagger import plan_allowed_send_date
from tasks.warehouse import read_frame, write_frame, write_rows

__all__ = [
    "ALERT_REASONS",
    "EVENT_TYPES",
    "AlertEvent",
    "Directory",
    "WebhookRejected",
    "accept_events",
    "decide_alerts",
    "directory_from_frames",
    "parse_event",
    "poll_accepted",
    "process_events",
    "record_answers",
    "recover_in_flight",
    "render_alerts",
    "send_due",
    "send_one",
    "settle_unknown",
    "sign",
    "store_event",
    "twilio_signature",
    "unsettled_report",
    "verify_signature",
    "verify_twilio",
]

log = logging.getLogger(__name__)

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)

EVENT_TYPES = ("payment_received", "payment_failed")
ALERT_REASONS = {
    "customer_unknown": "the event names a customer the directory does not know",
    "consent_unclear": "a consent row of the customer could not be read",
    "opted_out": "the customer opted out (on any channel)",
    "no_channel": "no channel is allowed with a usable address",
    "timezone_unknown": "no zone for the recipient",
    "no_common_window": "the candidate zones share no local window",
    "pci_pan": "the rendered text contains a card-number-like digit run",
    "sms_too_long": "the SMS needs more segments (or characters) than allowed",
}
PERMANENT_SMS_REASONS = frozenset(
    {"InvalidDestination", "RecipientOptedOut", "InvalidMessageStructure", "UnknownMessage"}
)
"""Genesys ``normalizedMessage.reasons[].code`` of a failed SMS that a retry cannot fix."""

_EVENT_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
_PLAIN_AMOUNT = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_CURRENCIES = frozenset(list_currencies())


class WebhookRejected(Exception):
    """A webhook request refused with ``status`` and a reason ``code``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message
        super().__init__(f"{status} {code}: {message}")


Bind = Engine | sa.Connection
"""Where a function runs its transaction: an engine (a pooled connection each time) or a
connection kept by its caller (the service's writer and recorder threads: no checkout,
check-in and reset per group)."""


@contextmanager
def _begin(bind: Bind) -> Iterator[sa.Connection]:
    """One transaction on ``bind``: committed on success, rolled back on error."""
    if isinstance(bind, sa.Connection):
        with bind.begin():
            yield bind
    else:
        with bind.begin() as conn:
            yield conn


# --- signatures ----------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Reminders-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_signature(
    secret: str,
    *,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: datetime,
    tolerance_seconds: int,
) -> None:
    """Raise :class:`WebhookRejected` unless ``signature`` signs ``body`` at a fresh time."""
    if not timestamp or not signature:
        raise WebhookRejected(401, "signature_missing", "timestamp and signature headers needed")
    if not re.fullmatch(r"[0-9]{1,12}", timestamp.strip()):
        raise WebhookRejected(400, "timestamp_invalid", "timestamp must be unix seconds")
    sent = int(timestamp.strip())
    skew = abs(_naive(now).replace(tzinfo=UTC).timestamp() - sent)
    if skew > tolerance_seconds:
        raise WebhookRejected(
            401, "timestamp_outside_tolerance", f"timestamp is {skew:.0f} s from now"
        )
    expected = sign(secret, sent, body)
    offered = [p.strip() for p in signature.split(",") if p.strip().startswith("v1=")]
    if not any(hmac.compare_digest(expected, p) for p in offered):
        raise WebhookRejected(401, "signature_invalid", "signature does not match the body")


def twilio_signature(auth_token: str, url: str, params: Mapping[str, Any]) -> str:
    """Twilio's ``X-Twilio-Signature``: base64 HMAC-SHA1 of the URL + sorted name/value pairs."""
    data = url
    for name in sorted(params):
        values = params[name]
        for value in sorted(values) if isinstance(values, list | tuple) else [values]:
            data += f"{name}{value}"
    mac = hmac.new(auth_token.encode(), data.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def _url_variants(url: str) -> list[str]:
    """The URL as given, and with / without its default port (Twilio's SDK accepts both)."""
    match = re.match(r"^(https?)://([^/:]+)(:\d+)?(.*)$", url)
    if not match:
        return [url]
    scheme, host, port, rest = match.groups()
    default = ":443" if scheme == "https" else ":80"
    variants = {url, f"{scheme}://{host}{rest}"}
    if port is None:
        variants.add(f"{scheme}://{host}{default}{rest}")
    return sorted(variants)


def verify_twilio(
    auth_token: str, url: str, params: Mapping[str, Any], signature: str | None
) -> bool:
    """Is ``signature`` Twilio's for this public URL and form body (constant-time compare)?"""
    if not signature:
        return False
    return any(
        hmac.compare_digest(twilio_signature(auth_token, u, params), signature)
        for u in _url_variants(url)
    )


# --- events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertEvent:
    event_id: str
    kind: str
    customer_id: str
    invoice_id: str
    amount_minor: int
    currency: str
    occurred_at: datetime


def _naive(moment: datetime) -> datetime:
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


def _field_str(body: dict[str, Any], name: str, limit: int = 128) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise WebhookRejected(422, "event_invalid", f"{name} must be a string of 1-{limit} chars")
    return value.strip()


def parse_event(body: bytes) -> AlertEvent:
    """The event in a webhook body, or :class:`WebhookRejected` (422 ``event_invalid``)."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WebhookRejected(422, "event_invalid", "body is not UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise WebhookRejected(422, "event_invalid", "body must be a JSON object")
    event_id = _field_str(data, "event_id")
    if not _EVENT_ID.match(event_id):
        raise WebhookRejected(422, "event_invalid", "event_id: letters, digits, _ . : - only")
    kind = data.get("type")
    if kind not in EVENT_TYPES:
        raise WebhookRejected(422, "event_invalid", f"type must be one of {', '.join(EVENT_TYPES)}")
    currency = _field_str(data, "currency", 3).upper()
    if currency not in _CURRENCIES:
        raise WebhookRejected(422, "event_invalid", "currency is not an ISO 4217 code")
    raw_amount = data.get("amount")
    text = raw_amount.strip() if isinstance(raw_amount, str) else None
    if text is None or not _PLAIN_AMOUNT.match(text):
        raise WebhookRejected(
            422, "event_invalid", "amount must be a plain decimal string, e.g. '12.50'"
        )
    digits = get_currency_precision(currency)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise WebhookRejected(422, "event_invalid", "amount is not a decimal") from None
    if -value.as_tuple().exponent > digits:  # type: ignore[operator]
        raise WebhookRejected(422, "event_invalid", f"amount has more than {digits} decimals")
    minor = int(value.scaleb(digits))
    if minor > 10**12:
        raise WebhookRejected(422, "event_invalid", "amount is too large")
    stamp = _field_str(data, "occurred_at", 40)
    try:
        occurred = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        raise WebhookRejected(422, "event_invalid", "occurred_at is not ISO-8601") from None
    if occurred.tzinfo is None:
        raise WebhookRejected(422, "event_invalid", "occurred_at needs an offset (or Z)")
    return AlertEvent(
        event_id,
        kind,
        _field_str(data, "customer_id"),
        _field_str(data, "invoice_id"),
        minor,
        currency,
        _naive(occurred),
    )


def store_event(engine: Engine, event: AlertEvent, payload: bytes, *, now: datetime) -> bool:
    """Commit the event to ``alert_events``; False when its id is already stored (a replay)."""
    params = {
        "e": event.event_id,
        "k": event.kind,
        "c": event.customer_id,
        "i": event.invoice_id,
        "a": event.amount_minor,
        "cur": event.currency,
        "o": event.occurred_at,
        "r": _naive(now),
        "p": payload.decode("utf-8"),
    }
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "insert into alert_events (event_id, kind, customer_id, invoice_id,"
                    " amount_minor, currency, occurred_at_utc, received_at_utc, payload, state,"
                    " updated_at_utc) values (:e, :k, :c, :i, :a, :cur, :o, :r, :p,"
                    " 'received', :r)"
                ),
                params,
            )
    except sa.exc.IntegrityError:
        return False
    except sa.exc.DBAPIError as exc:  # DuckDB reports a duplicate key as a ConstraintException
        if "constraint" in str(exc).lower() or "duplicate" in str(exc).lower():
            return False
        raise
    return True


def store_events(
    engine: Engine, batch: list[tuple[AlertEvent, bytes]], *, now: datetime
) -> list[bool]:
    """Commit a batch of events in one transaction (group commit); per event, False when its
    id is already stored or earlier in the batch (a replay)."""
    if not batch:
        return []
    with engine.begin() as conn:
        return _insert_events(conn, batch, now=now)


def _insert_events(
    conn: sa.Connection,
    batch: list[tuple[AlertEvent, bytes]],
    *,
    now: datetime,
    known: set[str] | None = None,
) -> list[bool]:
    """Insert the events whose id is not stored yet nor earlier in the batch. ``known``: the
    ids already stored, if the caller knows them (an empty set: assume none, a duplicate
    key then fails the insert); None reads them."""
    if known is None:
        ids = [e.event_id for e, _ in batch]
        known = {
            r[0]
            for r in conn.execute(
                sa.text("select event_id from alert_events where event_id in :ids").bindparams(
                    sa.bindparam("ids", expanding=True)
                ),
                {"ids": ids},
            )
        }
    fresh: list[bool] = []
    rows: list[tuple[Any, ...]] = []
    for event, payload in batch:
        if event.event_id in known:
            fresh.append(False)
            continue
        known.add(event.event_id)
        fresh.append(True)
        rows.append(
            (
                event.event_id,
                event.kind,
                event.customer_id,
                event.invoice_id,
                event.amount_minor,
                event.currency,
                event.occurred_at,
                _naive(now),
                payload.decode("utf-8"),
                "received",
                _naive(now),
            )
        )
    write_rows(conn, "alert_events", rows, STORED_EVENT_SCHEMA)
    return fresh


STORED_EVENT_SCHEMA = {
    "event_id": pl.String,
    "kind": pl.String,
    "customer_id": pl.String,
    "invoice_id": pl.String,
    "amount_minor": pl.Int64,
    "currency": pl.String,
    "occurred_at_utc": pl.Datetime("us"),
    "received_at_utc": pl.Datetime("us"),
    "payload": pl.String,
    "state": pl.String,
    "updated_at_utc": pl.Datetime("us"),
}


@dataclass
class Accepted:
    """What :func:`accept_events` committed: per event, stored (False = a replay); and the
    alerts whose send intent is committed with them, to be sent now (``sending``, attempt 1)."""

    stored: list[bool]
    to_send: list[dict[str, Any]] = field(default_factory=list)


def accept_events(
    engine: Bind,
    batch: list[tuple[AlertEvent, bytes]],
    *,
    now: datetime,
    directory: Directory | Callable[[sa.Connection], Directory],
    templates: TemplateSet,
    alerts: AlertSettings,
    cadence: CadenceSettings,
    render: RenderSettings,
) -> Accepted:
    """Store a batch of webhook events AND decide their alerts in the same transaction (one
    commit: the events durable, each decision recorded as :func:`process_events` would, held
    / excluded with its reason, and the send intent of each alert due now committed as
    ``sending`` attempt 1). Returns the rows to send at once. A kill after this commit leaves
    them ``sending``, which the next start settles by lookup (:func:`settle_unknown`), never by
    a blind resend. The events stay ``received``: the worker still marks them ``alerted`` and
    cancels a paid invoice's reminders (:func:`process_events` skips the decisions it finds
    made). The service's group commit; :func:`store_events` alone when deciding fails.

    ``directory`` may be a function of the transaction's connection (the service checks the
    captured consent's version in the same snapshot). The group is first inserted as if none
    of its ids were stored (the common case: no read of ``alert_events``); a duplicate key
    rolls that attempt back and the group is done again with the ids read first."""
    now = _naive(now)
    if not batch:
        return Accepted([])
    try:
        with _begin(engine) as conn:
            return _accept(conn, batch, now, directory, templates, alerts, cadence, render, False)
    except _Replayed:
        pass
    with _begin(engine) as conn:
        return _accept(conn, batch, now, directory, templates, alerts, cadence, render, True)


class _Replayed(Exception):
    """An id of the group was already stored: the optimistic insert was rolled back."""


def _accept(
    conn: sa.Connection,
    batch: list[tuple[AlertEvent, bytes]],
    now: datetime,
    directory: Directory | Callable[[sa.Connection], Directory],
    templates: TemplateSet,
    alerts: AlertSettings,
    cadence: CadenceSettings,
    render: RenderSettings,
    check_stored: bool,
) -> Accepted:
    resolved = directory(conn) if callable(directory) else directory
    if check_stored:
        stored = _insert_events(conn, batch, now=now)
    else:
        try:
            stored = _insert_events(conn, batch, now=now, known=set())
        except Exception as exc:
            if _is_duplicate_key(exc):
                raise _Replayed from exc
            raise
    fresh = [e for (e, _p), ok in zip(batch, stored, strict=True) if ok]
    to_send = _intend(
        conn,
        fresh,
        now=now,
        directory=resolved,
        templates=templates,
        alerts=alerts,
        cadence=cadence,
        render=render,
    )
    return Accepted(stored, to_send)


def _is_duplicate_key(exc: BaseException) -> bool:
    """A unique / primary key violation, from SQLAlchemy or straight from the driver (the
    loaders use the raw connection)."""
    if isinstance(exc, sa.exc.IntegrityError):
        return True
    text = str(exc).lower()
    return "duplicate" in text or "unique" in text or "constraint" in text


def _intend(
    conn: sa.Connection,
    fresh: list[AlertEvent],
    *,
    now: datetime,
    directory: Directory,
    templates: TemplateSet,
    alerts: AlertSettings,
    cadence: CadenceSettings,
    render: RenderSettings,
) -> list[dict[str, Any]]:
    """Decide, render and write the alerts of ``fresh`` events (rows as :func:`_alert_rows`
    would make them, with the ones due now already ``sending`` attempt 1), log each decision
    and each intent; returns the ``sending`` rows. Plain Python per event: the customer's
    part of the decision comes from the directory's cache (:meth:`Directory.choices_for`,
    the same planning rules as :func:`decide_alerts`), the zones from one pendulum call per
    distinct zone set, the text from :func:`_render_one`; a group of a few events costs no
    polars query."""
    if not fresh:
        return []
    choices = directory.choices_for([e.customer_id for e in fresh], cadence)
    releases = _Releases(now, alerts.window)
    rows: list[dict[str, Any]] = []
    decided: list[tuple[Any, ...]] = []
    intents: list[tuple[Any, ...]] = []
    for event in fresh:
        # no alert can exist yet: these events were not stored before this transaction (alert
        # keys are event ids; a conflict would roll the group back to store_events alone)
        choice = choices[event.customer_id]
        reason, release = choice["reason"], None
        if reason is None:
            release, reason = releases(choice["time_zones"])
        subject, body, reason = _render_one(
            {
                **choice,
                "reason": reason,
                "kind": event.kind,
                "amount_minor": event.amount_minor,
                "currency": event.currency,
            },
            templates,
            render,
            _payment_token,
        )
        if reason is not None:
            state = "excluded"
        elif release is not None and release > now:
            state = "held"
        else:
            state = "ready"
        due = state == "ready" and release is not None and release <= now
        rows.append(
            {
                "alert_key": event.event_id,
                "event_id": event.event_id,
                "customer_id": event.customer_id,
                "channel": choice["channel"],
                "to_address": choice["to_address"],
                "subject": subject,
                "body": body,
                "state": "sending" if due else state,
                "state_reason": "attempt 1" if due else reason,
                "release_at_utc": release,
                "attempts": 1 if due else 0,
                "next_attempt_at_utc": release,
                "created_at_utc": now,
                "updated_at_utc": now,
            }
        )
        if due:
            decided.append((event.event_id, now, None, "ready", "decided"))
            intents.append((event.event_id, now, "ready", "sending", "attempt 1"))
        else:
            decided.append((event.event_id, now, None, state, reason or "decided"))
    write_rows(conn, "alerts", [tuple(r[c] for c in ALERT_SCHEMA) for r in rows], ALERT_SCHEMA)
    write_rows(conn, "alert_log", decided + intents, ALERT_LOG_SCHEMA)
    return [r for r in rows if r["state"] == "sending"]


def _payment_token() -> str:
    return secrets.token_urlsafe(16)


# --- the directory: who the customers are and what they consented to -----------------------


@dataclass
class Directory:
    """Customers (normalized) and their consent state, folded by ``tasks.consent`` from the
    source's consent events plus the ones this project captured (``consent_events`` table)."""

    customers: pl.DataFrame
    consent: pl.DataFrame
    shared_phones: frozenset[str] = field(default_factory=frozenset)
    source_events: pl.DataFrame | None = None
    unclear: pl.DataFrame | None = None
    version: tuple[Any, ...] | None = None
    """:func:`consent_version` of the captured events folded in (None: not read yet)."""
    _choices: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def choices_for(
        self, customer_ids: Iterable[str], cadence: CadenceSettings
    ) -> dict[str, dict[str, Any]]:
        """Customer id -> the customer's part of a decision (:func:`_customer_choices`: the
        planning rules over this directory's consent), for at least ``customer_ids``. Cached
        per directory (a consent change makes a new directory, so a new cache): only ids not
        seen yet are computed, in one polars query. A customer id listed twice in the
        directory fails closed (ValueError), as a duplicate alert key would."""
        key = (cadence.email_requires_opt_in, tuple(cadence.channel_order))
        table = self._choices.setdefault(key, {})
        missing = {c for c in customer_ids if c not in table}
        if missing:
            frame = _customer_choices(
                pl.Series("customer_id", sorted(missing), dtype=pl.String), self, cadence=cadence
            )
            found: dict[str, dict[str, Any]] = {}
            for row in frame.iter_rows(named=True):
                if row["customer_id"] in found:
                    raise ValueError(f"customer {row['customer_id']} is in the directory twice")
                found[row["customer_id"]] = row
            table.update(found)
        return table

    def warm(self, cadence: CadenceSettings, *, most: int = 200_000) -> None:
        """Compute every customer's choices now (at most ``most`` customers), so that the
        first events of each customer pay no polars query."""
        if self.customers.height <= most:
            self.choices_for(self.customers["customer_id"].to_list(), cadence)

    def customers_by_phone(self, phone: str) -> list[str]:
        return self.customers.filter(pl.col("phone_e164") == phone)["customer_id"].sort().to_list()

    def addresses_of(self, customer_ids: Iterable[str]) -> pl.DataFrame:
        return self.customers.filter(pl.col("customer_id").is_in(list(customer_ids))).select(
            "customer_id", "phone_e164", "email"
        )

    def refreshed(self, engine: Bind, *, now: datetime | None = None) -> Directory:
        """The same customers, consent folded again (as of ``now``: a later opt-in grants
        nothing yet) with every captured consent event."""
        base = self.source_events
        if base is None:
            base = pl.DataFrame(schema=STORED_CONSENT_SCHEMA)
        version = consent_version(engine)
        events = pl.concat(
            [
                base.select(list(STORED_CONSENT_SCHEMA)).cast(STORED_CONSENT_SCHEMA),  # type: ignore[arg-type]
                stored_consent_events(engine),
            ]
        )
        return Directory(
            self.customers,
            consent_state(events, as_of=now, unclear=self.unclear),
            self.shared_phones,
            self.source_events,
            self.unclear,
            version,
        )

    def current(self, engine: Bind, *, now: datetime | None = None) -> Directory:
        """This directory, or a refreshed one when captured consent changed since it was
        folded (one cheap read: the count and latest record time of ``consent_events``)."""
        if self.version is not None and consent_version(engine) == self.version:
            return self
        return self.refreshed(engine, now=now)


def consent_version(engine: Bind) -> tuple[Any, ...]:
    """A version of the captured consent: rows and the latest record time (rows are only
    ever appended, so any new event changes it). ``engine`` may be a connection inside a
    transaction (read in its snapshot)."""
    with _reading(engine) as conn:
        row = conn.execute(
            sa.text("select count(*), max(recorded_at_utc) from consent_events")
        ).one()
    return (int(row[0]), row[1])


@contextmanager
def _reading(bind: Bind) -> Iterator[sa.Connection]:
    """A read on an engine (its own transaction) or on a connection as it is (inside the
    caller's transaction)."""
    if isinstance(bind, sa.Connection):
        yield bind
    else:
        with bind.begin() as conn:
            yield conn


CUSTOMER_COLUMNS = (
    "customer_id",
    "full_name",
    "first_name",
    "phone_e164",
    "email",
    "time_zones",
    "locale",
    "preferred_channel",
)
STORED_CONSENT_SCHEMA = {
    "customer_id": pl.String(),
    "channel": pl.String(),
    "status": pl.String(),
    "occurred_at": pl.Datetime("us"),
}


def stored_consent_events(engine: Bind) -> pl.DataFrame:
    """Consent events this project captured (keywords, CRM imports) as consent_state input."""
    with _reading(engine) as conn:
        return read_frame(
            conn,
            "select customer_id, channel, status, occurred_at_utc as occurred_at"
            " from consent_events where status is not null and customer_id is not null",
            schema=STORED_CONSENT_SCHEMA,
        )


def directory_from_frames(
    customers: pl.DataFrame,
    consent_events: pl.DataFrame,
    *,
    unclear: pl.DataFrame | None = None,
    as_of: datetime | None = None,
) -> Directory:
    """A directory from normalized customers and consent events (source + captured ones)."""
    events = consent_events.select(list(STORED_CONSENT_SCHEMA)).cast(STORED_CONSENT_SCHEMA)  # type: ignore[arg-type]
    consent = consent_state(events, as_of=as_of, unclear=unclear)
    shared = (
        customers.drop_nulls("phone_e164")
        .group_by("phone_e164")
        .agg(pl.col("customer_id").n_unique().alias("n"))
        .filter(pl.col("n") > 1)["phone_e164"]
        .to_list()
    )
    return Directory(
        customers.select(CUSTOMER_COLUMNS), consent, frozenset(shared), events, unclear
    )


# --- decisions and rendering (pure) ----------------------------------------------------------


def _customer_choices(
    customer_ids: pl.Series, directory: Directory, *, cadence: CadenceSettings
) -> pl.DataFrame:
    """The part of a decision that depends on the customer only (the planning rules: consent,
    channel, address), one row per id in ``customer_ids``: ``channel``, ``to_address``,
    ``reason`` (the one found before the zones; null = none yet), ``time_zones``,
    ``full_name``, ``first_name``, ``locale``. One lazy query, one collect."""
    wanted = customer_ids.unique()
    consent = directory.consent.lazy().filter(pl.col("customer_id").is_in(wanted))
    people = directory.customers.lazy().filter(pl.col("customer_id").is_in(wanted))
    allowed = consent.select(
        "customer_id",
        "global_opt_out",
        "consent_unclear",
        channel_allowed("sms", email_requires_opt_in=cadence.email_requires_opt_in).alias(
            "_sms_ok"
        ),
        channel_allowed("email", email_requires_opt_in=cadence.email_requires_opt_in).alias(
            "_email_ok"
        ),
    )
    shared = list(directory.shared_phones)
    lazy = (
        pl.LazyFrame({"customer_id": wanted}, schema={"customer_id": pl.String})
        .join(
            people.with_columns(pl.lit(True).alias("_known")),
            on="customer_id",
            how="left",
        )
        .join(allowed, on="customer_id", how="left")
        .with_columns(
            pl.col("_known").fill_null(False),
            pl.col("global_opt_out").fill_null(False),
            pl.col("consent_unclear").fill_null(False),
            # no consent row at all: SMS needs an opt-in, e-mail only no opt-out (as planning)
            pl.col("_sms_ok").fill_null(False),
            pl.col("_email_ok").fill_null(not cadence.email_requires_opt_in),
        )
        .with_columns(
            (
                pl.col("_sms_ok")
                & pl.col("phone_e164").is_not_null()
                & ~pl.col("phone_e164").is_in(shared)
            ).alias("_sms"),
            (pl.col("_email_ok") & pl.col("email").is_not_null()).alias("_email"),
        )
    )
    order = [c for c in cadence.channel_order]
    first_ok = pl.lit(None, pl.String)
    for channel in reversed(order):
        first_ok = pl.when(pl.col(f"_{channel}")).then(pl.lit(channel)).otherwise(first_ok)
    chosen = (
        pl.when(
            (pl.col("preferred_channel") == "sms") & pl.col("_sms")
            | (pl.col("preferred_channel") == "email") & pl.col("_email")
        )
        .then(pl.col("preferred_channel"))
        .otherwise(first_ok)
    )
    reason = (
        pl.when(~pl.col("_known"))
        .then(pl.lit("customer_unknown"))
        .when(pl.col("consent_unclear"))
        .then(pl.lit("consent_unclear"))
        .when(pl.col("global_opt_out"))
        .then(pl.lit("opted_out"))
        .when(pl.col("channel").is_null())
        .then(pl.lit("no_channel"))
    )
    return (
        lazy.with_columns(chosen.alias("channel"))
        .select(
            "customer_id",
            "channel",
            pl.when(pl.col("channel") == "sms")
            .then(pl.col("phone_e164"))
            .when(pl.col("channel") == "email")
            .then(pl.col("email"))
            .alias("to_address"),
            reason.alias("reason"),
            "time_zones",
            "full_name",
            "first_name",
            "locale",
        )
        .collect()
    )


class _Releases:
    """Per distinct zone set (a pendulum call each, cached): when an alert decided at ``now``
    may go (the window start when it must be held, else ``now``), or why it never may."""

    def __init__(self, now: datetime, window: Any) -> None:
        self.now, self.window = now, window
        self._cache: dict[tuple[str, ...], tuple[datetime | None, str | None]] = {}

    def __call__(self, zones: Iterable[str] | None) -> tuple[datetime | None, str | None]:
        key = tuple(sorted(zones or []))
        if key not in self._cache:
            if not key:
                self._cache[key] = (None, "timezone_unknown")
            else:
                found = plan_allowed_send_date(list(key), self.now, self.window)
                self._cache[key] = (
                    (None, "no_common_window") if found is None else (max(self.now, found[1]), None)
                )
        return self._cache[key]


def decide_alerts(
    events: pl.DataFrame,
    directory: Directory,
    *,
    now: datetime,
    window: Any,
    cadence: CadenceSettings,
) -> pl.DataFrame:
    """One row per event: ``channel``, ``to_address``, ``reason`` (null = send) and
    ``release_at_utc`` (the window start when the alert must be held, else ``now``).

    ``events`` has event_id, customer_id (at least); ``window`` is a WindowSettings.
    """
    now = _naive(now)
    choices = _customer_choices(events["customer_id"], directory, cadence=cadence)
    frame = events.select("event_id", "customer_id").join(choices, on="customer_id", how="left")
    releases = _Releases(now, window)
    release: list[datetime | None] = []
    zone_reason: list[str | None] = []
    for zs in frame["time_zones"].to_list():
        at, why = releases(zs)
        release.append(at)
        zone_reason.append(why)
    reason = pl.coalesce(pl.col("reason"), pl.col("_zone_reason"))
    return (
        frame.lazy()
        .with_columns(
            pl.Series("release_at_utc", release, dtype=pl.Datetime("us")),
            pl.Series("_zone_reason", zone_reason, dtype=pl.String),
        )
        .select(
            "event_id",
            "customer_id",
            "channel",
            "to_address",
            reason.alias("reason"),
            pl.when(reason.is_null()).then(pl.col("release_at_utc")).alias("release_at_utc"),
            "full_name",
            "first_name",
            "locale",
        )
        .collect()
    )


def _render_one(
    row: Mapping[str, Any],
    templates: TemplateSet,
    render: RenderSettings,
    token: Callable[[], str],
) -> tuple[str | None, str | None, str | None]:
    """(subject, body, reason) of one decided alert: ``row`` has channel, kind, reason,
    amount_minor, currency, locale, first_name, full_name. Blocked (``pci_pan``,
    ``sms_too_long``) or already excluded: no text, the reason."""
    if row["reason"] is not None or row["channel"] is None:
        return None, None, row["reason"]
    template = templates.templates[f"{row['channel']}_{row['kind']}"]
    locale = _locale(row["locale"], render.default_locale)
    values = {
        "CustomerName": (row["first_name"] or row["full_name"] or "customer").strip(),
        "CompanyName": render.company_name,
        "SupportPhone": render.support_phone,
        "Amount": format_money(int(row["amount_minor"]), row["currency"], locale),
        "PaymentLink": render.payment_link_base + token(),
        "DueDate": "",
        "InvoiceCount": "1",
    }
    subject, body = template.fill(values)
    reason = None
    if contains_pan(body) or (subject is not None and contains_pan(subject)):
        reason = "pci_pan"
    elif row["channel"] == "sms" and (
        segment(body).count > render.sms_max_segments or len(body) > GENESYS_SMS_MAX_CHARS
    ):
        reason = "sms_too_long"
    if reason is not None:
        return None, None, reason
    return subject, body, None


def render_alerts(
    decided: pl.DataFrame,
    events: pl.DataFrame,
    templates: TemplateSet,
    render: RenderSettings,
    *,
    token: Callable[[], str] = lambda: secrets.token_urlsafe(16),
) -> pl.DataFrame:
    """``subject`` and ``body`` for each decided alert that may send; blocks ``pci_pan`` and
    ``sms_too_long`` like planning (the reason column is updated)."""
    joined = (
        decided.lazy()
        .join(events.lazy().select("event_id", "kind", "amount_minor", "currency"), on="event_id")
        .collect()
    )
    subjects: list[str | None] = []
    bodies: list[str | None] = []
    reasons: list[str | None] = []
    for row in joined.iter_rows(named=True):  # one per alert: a template fill each
        subject, body, reason = _render_one(row, templates, render, token)
        subjects.append(subject)
        bodies.append(body)
        reasons.append(reason)
    return (
        joined.lazy()
        .drop("reason")
        .with_columns(
            pl.Series("subject", subjects, dtype=pl.String),
            pl.Series("body", bodies, dtype=pl.String),
            pl.Series("reason", reasons, dtype=pl.String),
        )
        .collect()
    )


# --- the outbox: processing, sending, polling --------------------------------------------------

ALERT_SCHEMA = {
    "alert_key": pl.String(),
    "event_id": pl.String(),
    "customer_id": pl.String(),
    "channel": pl.String(),
    "to_address": pl.String(),
    "subject": pl.String(),
    "body": pl.String(),
    "state": pl.String(),
    "state_reason": pl.String(),
    "release_at_utc": pl.Datetime("us"),
    "attempts": pl.Int32(),
    "next_attempt_at_utc": pl.Datetime("us"),
    "created_at_utc": pl.Datetime("us"),
    "updated_at_utc": pl.Datetime("us"),
}
ALERT_LOG_SCHEMA = {
    "alert_key": pl.String(),
    "at_utc": pl.Datetime("us"),
    "from_state": pl.String(),
    "to_state": pl.String(),
    "detail": pl.String(),
}
EVENT_SCHEMA = {
    "event_id": pl.String(),
    "kind": pl.String(),
    "customer_id": pl.String(),
    "invoice_id": pl.String(),
    "amount_minor": pl.Int64(),
    "currency": pl.String(),
}


def _log(conn: sa.Connection, key: str, at: datetime, old: str | None, new: str, why: str) -> None:
    conn.execute(
        sa.text("insert into alert_log values (:k, :t, :f, :s, :d)"),
        {"k": key, "t": at, "f": old, "s": new, "d": why},
    )


def _move(
    conn: sa.Connection,
    key: str,
    *,
    old: str,
    new: str,
    now: datetime,
    why: str | None = None,
    **values: Any,
) -> bool:
    """Compare-and-set an alert's state; False when it was not in ``old`` any more."""
    sets = "".join(f", {k} = :{k}" for k in values)
    moved = conn.execute(
        sa.text(
            f"update alerts set state = :new, state_reason = :why, updated_at_utc = :now{sets}"
            " where alert_key = :key and state = :old"
        ),
        {"new": new, "why": why, "now": now, "key": key, "old": old, **values},
    ).rowcount
    if moved:
        _log(conn, key, now, old, new, why or "")
    return bool(moved)


def _move_many(
    conn: sa.Connection,
    rows: list[dict[str, Any]],
    *,
    old: str,
    now: datetime,
    columns: tuple[str, ...] = (),
) -> int:
    """:func:`_move` for many alerts in two statements: one compare-and-set UPDATE over a
    VALUES list (each row: ``alert_key``, ``new_state``, ``why`` and the alert ``columns``
    to set), one insert into ``alert_log`` of the rows that moved (RETURNING). Rows not in
    ``old`` any more are left alone and not logged. Returns how many moved."""
    if not rows:
        return 0
    names = ("alert_key", "new_state", "why", *columns)
    params: dict[str, Any] = {"now": now, "old": old}
    values = []
    for i, row in enumerate(rows):
        values.append("(" + ", ".join(f":{n}_{i}" for n in names) + ")")
        params |= {f"{n}_{i}": row[n] for n in names}
    sets = "".join(f", {c} = t.{c}" for c in columns)
    moved = conn.execute(
        sa.text(
            f"update alerts set state = t.new_state, state_reason = t.why, updated_at_utc = :now"
            f"{sets} from (values {', '.join(values)}) as t({', '.join(names)})"
            " where alerts.alert_key = t.alert_key and alerts.state = :old"
            " returning alerts.alert_key, alerts.state, alerts.state_reason"
        ),
        params,
    ).all()
    if moved:
        logged: dict[str, Any] = {"now": now, "old": old}
        for i, (key, state, why) in enumerate(moved):
            logged |= {f"k_{i}": key, f"s_{i}": state, f"d_{i}": why or ""}
        conn.execute(
            sa.text(
                "insert into alert_log (alert_key, at_utc, from_state, to_state, detail) values "
                + ", ".join(f"(:k_{i}, :now, :old, :s_{i}, :d_{i})" for i in range(len(moved)))
            ),
            logged,
        )
    return len(moved)


def recover_in_flight(engine: Engine, *, now: datetime) -> int:
    """Alerts left ``sending`` by a kill: the call may have reached Genesys, so they become
    ``unknown`` and are never sent again automatically. Returns how many."""
    now = _naive(now)
    with engine.begin() as conn:
        keys = [
            r[0]
            for r in conn.execute(sa.text("select alert_key from alerts where state = 'sending'"))
        ]
        for key in keys:
            _move(
                conn,
                key,
                old="sending",
                new="unknown",
                now=now,
                why="killed in flight: outcome unknown, settled by lookup",
            )
    return len(keys)


@dataclass
class Processed:
    events: int = 0
    alerts: int = 0
    held: int = 0
    excluded: dict[str, int] = field(default_factory=dict)
    paid_events: list[tuple[str, str]] = field(default_factory=list)


def _alert_rows(
    events: pl.DataFrame,
    directory: Directory,
    templates: TemplateSet,
    *,
    alerts: AlertSettings,
    cadence: CadenceSettings,
    render: RenderSettings,
    now: datetime,
) -> pl.DataFrame:
    """Alert rows (ready / held / excluded) for ``events`` (pure: decide, then render)."""
    decided = decide_alerts(events, directory, now=now, window=alerts.window, cadence=cadence)
    rendered = render_alerts(decided, events, templates, render)
    return (
        rendered.lazy()
        .select(
            pl.col("event_id").alias("alert_key"),
            "event_id",
            "customer_id",
            "channel",
            "to_address",
            "subject",
            "body",
            pl.when(pl.col("reason").is_not_null())
            .then(pl.lit("excluded"))
            .when(pl.col("release_at_utc") > now)
            .then(pl.lit("held"))
            .otherwise(pl.lit("ready"))
            .alias("state"),
            pl.col("reason").alias("state_reason"),
            "release_at_utc",
            pl.lit(0, pl.Int32).alias("attempts"),
            pl.col("release_at_utc").alias("next_attempt_at_utc"),
            pl.lit(now).alias("created_at_utc"),
            pl.lit(now).alias("updated_at_utc"),
        )
        .cast(ALERT_SCHEMA)  # type: ignore[arg-type]
        .collect()
    )


def _decided_log(rows: FrameT, now: datetime) -> FrameT:
    return rows.select(
        "alert_key",
        pl.lit(now).alias("at_utc"),
        pl.lit(None, pl.String).alias("from_state"),
        pl.col("state").alias("to_state"),
        pl.col("state_reason").fill_null("decided").alias("detail"),
    )


def process_events(
    engine: Engine,
    directory: Directory,
    templates: TemplateSet,
    *,
    alerts: AlertSettings,
    cadence: CadenceSettings,
    render: RenderSettings,
    now: datetime,
    limit: int = 500,
    min_age_seconds: float = 0.0,
) -> Processed:
    """Turn received events into alert rows (ready / held / excluded), in one transaction.

    ``min_age_seconds``: an event not decided yet is taken only this long after it was
    received (the service decides fresh events as it stores them, :func:`accept_events`;
    the worker catches what an error there left); a decided one at once (its payment cancels
    reminders).

    Events whose alert the accepting request already decided (:func:`accept_events`) are
    only marked ``alerted`` here (and their payments handed on for cancelling)."""
    now = _naive(now)
    out = Processed()
    with engine.begin() as conn:
        events = read_frame(
            conn,
            "select event_id, kind, customer_id, invoice_id, amount_minor, currency"
            " from alert_events e where state = 'received' and (received_at_utc <= :cut"
            " or exists (select 1 from alerts a where a.event_id = e.event_id))"
            f" order by received_at_utc limit {int(limit)}",
            {"cut": now - timedelta(seconds=min_age_seconds)},
            schema=EVENT_SCHEMA,
        )
        if events.height == 0:
            return out
        ids = events["event_id"].to_list()
        known = _known_alert_events(conn, ids)
        todo = events.join(known, on="event_id", how="anti")
        rows = (
            _alert_rows(
                todo, directory, templates, alerts=alerts, cadence=cadence, render=render, now=now
            )
            if todo.height
            else pl.DataFrame(schema=ALERT_SCHEMA)
        )
        write_frame(conn, "alerts", rows)
        write_frame(conn, "alert_log", _decided_log(rows, now))
        conn.execute(
            sa.text(
                "update alert_events set state = 'alerted', updated_at_utc = :now"
                " where state = 'received' and event_id in :ids"
            ).bindparams(sa.bindparam("ids", expanding=True)),
            {"now": now, "ids": ids},
        )
    out.events = events.height
    out.alerts = rows.filter(pl.col("state") != "excluded").height
    out.held = rows.filter(pl.col("state") == "held").height
    for (reason,), group in rows.filter(pl.col("state") == "excluded").group_by(["state_reason"]):
        out.excluded[str(reason)] = group.height
    out.paid_events = [
        (e, i)
        for e, k, i in events.select("event_id", "kind", "invoice_id").iter_rows()
        if k == "payment_received"
    ]
    return out


def _known_alert_events(conn: sa.Connection, ids: list[str]) -> pl.DataFrame:
    """The event ids among ``ids`` that already have an alert row."""
    found = conn.execute(
        sa.text("select distinct event_id from alerts where event_id in :ids").bindparams(
            sa.bindparam("ids", expanding=True)
        ),
        {"ids": ids},
    )
    return pl.DataFrame({"event_id": [r[0] for r in found]}, schema={"event_id": pl.String})


def release_held(engine: Engine, *, now: datetime) -> int:
    """Held alerts whose window has opened become ``ready``."""
    now = _naive(now)
    with engine.begin() as conn:
        keys = [
            r[0]
            for r in conn.execute(
                sa.text(
                    "select alert_key from alerts where state = 'held' and release_at_utc <= :n"
                ),
                {"n": now},
            )
        ]
        for key in keys:
            _move(conn, key, old="held", new="ready", now=now, why="window opened")
    return len(keys)


@dataclass
class SendResult:
    accepted: int = 0
    retried: int = 0
    failed: int = 0
    unknown: int = 0
    fallbacks: int = 0


def _fallback_to_email(
    conn: sa.Connection,
    alert: dict[str, Any],
    directory: Directory,
    templates: TemplateSet,
    *,
    alerts: AlertSettings,
    cadence: CadenceSettings,
    render: RenderSettings,
    now: datetime,
) -> bool:
    """Queue the e-mail alert for a permanently failed SMS, if e-mail is allowed."""
    event = read_frame(
        conn,
        "select event_id, kind, customer_id, invoice_id, amount_minor, currency"
        " from alert_events where event_id = :e",
        {"e": alert["event_id"]},
        schema=EVENT_SCHEMA,
    )
    email_only = CadenceSettings(**(cadence.model_dump() | {"channel_order": ["email"]}))
    prefs = directory.customers.with_columns(pl.lit("email").alias("preferred_channel"))
    decided = decide_alerts(
        event,
        Directory(prefs, directory.consent, directory.shared_phones),
        now=now,
        window=alerts.window,
        cadence=email_only,
    )
    rendered = render_alerts(decided, event, templates, render)
    row = rendered.row(0, named=True)
    key = f"{alert['event_id']}:email"
    if row["reason"] is not None or row["channel"] != "email":
        return False
    exists = conn.execute(sa.text("select 1 from alerts where alert_key = :k"), {"k": key}).first()
    if exists:
        return True
    state = "held" if row["release_at_utc"] > now else "ready"
    conn.execute(
        sa.text(
            "insert into alerts (alert_key, event_id, customer_id, channel, to_address, subject,"
            " body, state, state_reason, release_at_utc, attempts, next_attempt_at_utc,"
            " created_at_utc, updated_at_utc) values (:k, :e, :c, 'email', :to, :s, :b, :st,"
            " 'fallback after a permanent SMS failure', :rel, 0, :rel, :n, :n)"
        ),
        {
            "k": key,
            "e": alert["event_id"],
            "c": alert["customer_id"],
            "to": row["to_address"],
            "s": row["subject"],
            "b": row["body"],
            "st": state,
            "rel": row["release_at_utc"],
            "n": now,
        },
    )
    _log(conn, key, now, None, state, "fallback after a permanent SMS failure")
    return True


def _failed(
    engine: Bind,
    alert: dict[str, Any],
    why: str,
    *,
    old: str,
    permanent: bool,
    ctx: dict[str, Any],
    result: SendResult,
) -> None:
    now = ctx["now"]
    with _begin(engine) as conn:
        retry = not permanent and int(alert["attempts"]) < ctx["alerts"].max_send_attempts
        if retry:
            _move(
                conn,
                alert["alert_key"],
                old=old,
                new="ready",
                now=now,
                why=f"retry: {why}",
                next_attempt_at_utc=now + timedelta(seconds=ctx["alerts"].retry_after_seconds),
            )
            result.retried += 1
            return
        _move(conn, alert["alert_key"], old=old, new="failed", now=now, why=why)
        result.failed += 1
        if alert["channel"] == "sms" and _fallback_to_email(
            conn,
            alert,
            ctx["directory"],
            ctx["templates"],
            alerts=ctx["alerts"],
            cadence=ctx["cadence"],
            render=ctx["render"],
            now=now,
        ):
            result.fallbacks += 1


def send_one(client: GenesysClient, genesys: GenesysSettings, alert: dict[str, Any]) -> Any:
    """One agentless request for an alert row; returns the answer or the exception raised."""
    return _call(client, genesys, alert)


def _call(client: GenesysClient, genesys: GenesysSettings, alert: dict[str, Any]) -> Any:
    """One agentless request; returns the answer or the exception it raised."""
    try:
        if alert["channel"] == "sms":
            return client.send_agentless_sms(genesys.sms_sender, alert["to_address"], alert["body"])
        return client.send_agentless_email(
            f"{genesys.email_from_local_part}@{genesys.email_from_domain_id}",
            genesys.email_friendly_name,
            alert["to_address"],
            alert["subject"] or "",
            alert["body"],
        )
    except Exception as exc:  # recorded by record_answers: GenesysError kinds, else unknown
        return exc


def send_due(
    engine: Engine,
    client: GenesysClient,
    directory: Directory,
    templates: TemplateSet,
    *,
    alerts: AlertSettings,
    cadence: CadenceSettings,
    render: RenderSettings,
    genesys: GenesysSettings,
    now: datetime,
    limit: int = 200,
    pool: Executor | None = None,
) -> SendResult:
    """Send every ready alert whose time has come.

    The intent of the whole batch (``sending``, attempt + 1) is committed in one transaction
    before any call; the calls run on ``pool`` (in parallel under the client's rate limit);
    the answers are recorded in one transaction. A kill between the two leaves the batch
    ``sending``, settled ``unknown`` at the next start (never resent blind)."""
    now = _naive(now)
    result = SendResult()
    ctx = send_context(directory, templates, alerts=alerts, cadence=cadence, render=render, now=now)
    with engine.begin() as conn:
        due = read_frame(
            conn,
            "select * from alerts where state = 'ready' and coalesce(next_attempt_at_utc,"
            f" release_at_utc) <= :n order by created_at_utc limit {int(limit)}",
            {"n": now},
        )
        if due.height == 0:
            return result
        keys = due["alert_key"].to_list()
        conn.execute(
            sa.text(
                "update alerts set state = 'sending', attempts = attempts + 1,"
                " state_reason = 'attempt ' || cast(attempts + 1 as varchar),"
                " updated_at_utc = :n where state = 'ready' and alert_key in :keys"
            ).bindparams(sa.bindparam("keys", expanding=True)),
            {"n": now, "keys": keys},
        )
        write_frame(
            conn,
            "alert_log",
            due.select(
                "alert_key",
                pl.lit(now).alias("at_utc"),
                pl.lit("ready").alias("from_state"),
                pl.lit("sending").alias("to_state"),
                (pl.lit("attempt ") + (pl.col("attempts") + 1).cast(pl.String)).alias("detail"),
            ),
        )
    rows = due.with_columns(pl.col("attempts") + 1).to_dicts()
    if pool is None:
        answers = [_call(client, genesys, a) for a in rows]
    else:
        answers = list(pool.map(lambda a: _call(client, genesys, a), rows))
    return record_answers(engine, rows, answers, ctx=ctx, now=now, result=result)


def send_context(
    directory: Directory,
    templates: TemplateSet,
    *,
    alerts: AlertSettings,
    cadence: CadenceSettings,
    render: RenderSettings,
    now: datetime,
) -> dict[str, Any]:
    """What recording an answer needs (retry rule, e-mail fallback rendering)."""
    return {
        "now": _naive(now),
        "alerts": alerts,
        "cadence": cadence,
        "render": render,
        "directory": directory,
        "templates": templates,
    }


def record_answers(
    engine: Bind,
    rows: list[dict[str, Any]],
    answers: list[Any],
    *,
    ctx: dict[str, Any],
    now: datetime,
    result: SendResult | None = None,
) -> SendResult:
    """Record the agentless answers of ``rows`` (alerts in ``sending``, ``attempts`` already
    counting this call) in one transaction: accepted (SMS) / sent (e-mail) with the Genesys
    ids; ``unknown`` when the outcome is unknown (settled later by lookup, never resent
    blind); ``ready`` again for a 503 / 429 (not processed); rejected ones failed (SMS then
    falls back to e-mail). Per kind of answer one compare-and-set statement
    (:func:`_move_many`)."""
    now = _naive(now)
    result = result or SendResult()
    alerts: AlertSettings = ctx["alerts"]
    failures: list[tuple[dict[str, Any], Exception]] = []
    accepted: list[dict[str, Any]] = []
    unknown: list[dict[str, Any]] = []
    again: list[dict[str, Any]] = []
    for alert, answer in zip(rows, answers, strict=True):
        key = alert["alert_key"]
        if isinstance(answer, OutcomeUnknown):
            unknown.append(
                {
                    "alert_key": key,
                    "new_state": "unknown",
                    "why": "outcome unknown (connection lost after the request): settled by lookup",
                }
            )
        elif isinstance(answer, TransientServerError | RateLimited):
            # 503 / 429 after the client's own retries: Genesys did not process the request,
            # so it is sent again later; this does not use up a delivery attempt
            again.append(
                {
                    "alert_key": key,
                    "new_state": "ready",
                    "why": f"not processed ({answer.__class__.__name__}): sent again later",
                    "attempts": int(alert["attempts"]) - 1,
                    "next_attempt_at_utc": now + timedelta(seconds=alerts.retry_after_seconds),
                }
            )
        elif isinstance(answer, RequestRejected):
            failures.append((alert, answer))
        elif isinstance(answer, BaseException):
            # any other failure after the request may have left: never guessed
            unknown.append({"alert_key": key, "new_state": "unknown", "why": str(answer)[:200]})
        else:
            sms = alert["channel"] == "sms"
            accepted.append(
                {
                    "alert_key": key,
                    "new_state": "accepted" if sms else "sent",
                    "why": "accepted by Genesys (not delivered)" if sms else "e-mail handed off",
                    "accepted_at_utc": now,
                    "genesys_conversation_id": (answer or {}).get("conversationId"),
                    "genesys_message_id": (answer or {}).get("id"),
                }
            )
    if accepted or unknown or again:
        with _begin(engine) as conn:  # the answers of the batch: one transaction
            result.accepted += _move_many(
                conn,
                accepted,
                old="sending",
                now=now,
                columns=("accepted_at_utc", "genesys_conversation_id", "genesys_message_id"),
            )
            result.unknown += _move_many(conn, unknown, old="sending", now=now)
            result.retried += _move_many(
                conn, again, old="sending", now=now, columns=("attempts", "next_attempt_at_utc")
            )
    for alert, exc in failures:
        assert isinstance(exc, RequestRejected)
        _failed(
            engine,
            alert,
            f"rejected {exc.status} {exc.code}",
            old="sending",
            permanent=True,
            ctx=ctx | {"now": now},
            result=result,
        )
    return result


@dataclass
class Settled:
    found: int = 0
    resent: int = 0
    waiting: int = 0
    review: int = 0
    errors: int = 0


RESEND_MARK = "not found by lookup"


def settle_unknown(
    engine: Engine,
    client: GenesysClient,
    *,
    alerts: AlertSettings,
    genesys: GenesysSettings,
    now: datetime,
    limit: int = 50,
) -> Settled:
    """Settle alerts whose send outcome is unknown by looking the message up in Genesys.

    Only ``unknown`` rows without a Genesys message id (the request may or may not have
    reached Genesys: a lost connection, a kill in flight) whose next look is due. For an SMS,
    :meth:`GenesysClient.find_agentless_sms` over the interval from the last intent (minus
    ``alerts.lookup_margin_seconds``) to now (plus the margin):

    * exactly one message with this body -> ``accepted`` with its conversation and message
      ids (then polled like any other);
    * none, and every candidate was read -> before ``alerts.lookup_delay_seconds`` have
      passed since the intent: wait (analytics may not have it yet); after: ``ready`` again,
      once (``not found by lookup`` in the log); a second time: ``review``;
    * several with this body, or none while a candidate could not be read -> ``review``
      (held for a person, reported in ``/health`` and :func:`unsettled_report`; never a
      guess);
    * the lookup itself failing -> stays ``unknown`` and is looked up again later.

    An e-mail alert has no lookup here: ``review``."""
    now = _naive(now)
    out = Settled()
    due = (
        " from alerts a where a.state = 'unknown' and a.genesys_message_id is null"
        " and (a.next_attempt_at_utc is null or a.next_attempt_at_utc <= :n)"
    )
    with engine.begin() as conn:
        # the common case, nothing to settle, without the two lookups over alert_log per row
        if conn.execute(sa.text(f"select count(*){due}"), {"n": now}).scalar_one() == 0:
            return out
        rows = read_frame(
            conn,
            "select a.*, (select max(l.at_utc) from alert_log l where l.alert_key = a.alert_key"
            " and l.to_state = 'sending') as intent_at_utc, (select count(*) from alert_log l"
            " where l.alert_key = a.alert_key and l.detail like :mark) as resends"
            " from alerts a where a.state = 'unknown' and a.genesys_message_id is null"
            " and (a.next_attempt_at_utc is null or a.next_attempt_at_utc <= :n)"
            f" order by a.updated_at_utc limit {int(limit)}",
            {"n": now, "mark": RESEND_MARK + "%"},
        )
    margin = timedelta(seconds=alerts.lookup_margin_seconds)
    delay = timedelta(seconds=alerts.lookup_delay_seconds)
    for alert in rows.iter_rows(named=True):
        key = alert["alert_key"]
        intent = alert["intent_at_utc"] or alert["updated_at_utc"]
        if alert["channel"] != "sms":
            with engine.begin() as conn:
                _move(
                    conn,
                    key,
                    old="unknown",
                    new="review",
                    now=now,
                    why="e-mail outcome unknown and no e-mail lookup: a person checks",
                )
            out.review += 1
            continue
        try:
            found = client.find_agentless_sms(
                genesys.sms_sender,
                alert["to_address"],
                alert["body"],
                start=intent - margin,
                end=now + margin,
            )
        except GenesysError as exc:
            log.warning("lookup of an unknown alert failed, tried again later: %s", exc)
            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "update alerts set next_attempt_at_utc = :t where alert_key = :k"
                        " and state = 'unknown'"
                    ),
                    {"t": now + timedelta(seconds=max(alerts.retry_after_seconds, 1)), "k": key},
                )
            out.errors += 1
            continue
        with engine.begin() as conn:
            if len(found.matches) == 1:
                match = found.matches[0]
                _move(
                    conn,
                    key,
                    old="unknown",
                    new="accepted",
                    now=now,
                    why=f"settled by lookup: found message {match['id']}",
                    accepted_at_utc=now,
                    genesys_conversation_id=match["conversationId"],
                    genesys_message_id=match["id"],
                )
                out.found += 1
            elif len(found.matches) > 1 or found.unreadable:
                why = (
                    f"lookup found {len(found.matches)} messages with this body"
                    if found.matches
                    else f"lookup could not read {found.unreadable} candidate message(s)"
                )
                _move(conn, key, old="unknown", new="review", now=now, why=why + ": not guessed")
                out.review += 1
            elif now - intent < delay:
                conn.execute(
                    sa.text(
                        "update alerts set next_attempt_at_utc = :t where alert_key = :k"
                        " and state = 'unknown'"
                    ),
                    {"t": intent + delay, "k": key},
                )
                out.waiting += 1
            elif int(alert["resends"] or 0) == 0:
                _move(
                    conn,
                    key,
                    old="unknown",
                    new="ready",
                    now=now,
                    why=f"{RESEND_MARK} {delay.total_seconds():.0f} s after the intent:"
                    " resent once",
                    next_attempt_at_utc=now,
                )
                out.resent += 1
            else:
                _move(
                    conn,
                    key,
                    old="unknown",
                    new="review",
                    now=now,
                    why="not found by lookup after its one resend: not sent again",
                )
                out.review += 1
    return out


def unsettled_report(engine: Engine) -> pl.DataFrame:
    """Alerts held for a person (``review``) or still ``unknown``, with the reason (no
    address: the key leads to the row)."""
    with engine.begin() as conn:
        return read_frame(
            conn,
            "select alert_key, event_id, channel, state, state_reason, attempts, updated_at_utc"
            " from alerts where state in ('review', 'unknown') order by updated_at_utc",
        )


@dataclass
class PollResult:
    delivered: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    fallbacks: int = 0
    timed_out: int = 0
    pending: int = 0


FINAL_OK = {"delivery-success": "delivered", "read": "delivered"}
FAILED = {"failed", "delivery-failed"}


def poll_accepted(
    engine: Engine,
    client: GenesysClient,
    directory: Directory,
    templates: TemplateSet,
    *,
    alerts: AlertSettings,
    cadence: CadenceSettings,
    render: RenderSettings,
    now: datetime,
) -> PollResult:
    """Poll the status of accepted SMS alerts; settle delivered / failed / timed out.

    ``sent`` (handed to the carrier) is kept polling until a final receipt or the timeout, then
    settled ``sent``; still ``queued`` at the timeout is ``unknown`` (never resent blind); a
    failure with a permanent reason falls back to e-mail, another is retried."""
    now = _naive(now)
    out = PollResult()
    send_result = SendResult()
    ctx = send_context(directory, templates, alerts=alerts, cadence=cadence, render=render, now=now)
    with engine.begin() as conn:
        rows = read_frame(conn, "select * from alerts where state = 'accepted'")
    for alert in rows.iter_rows(named=True):
        try:
            data = client.get_message(alert["genesys_conversation_id"], alert["genesys_message_id"])
        except GenesysError as exc:
            log.warning("status poll failed, retried next tick: %s", exc)
            out.pending += 1
            continue
        status = str(data.get("status") or "")
        reasons = [
            str(r.get("code")) for r in ((data.get("normalizedMessage") or {}).get("reasons") or [])
        ]
        timed_out = (now - alert["accepted_at_utc"]).total_seconds() >= alerts.poll_timeout_seconds
        with engine.begin() as conn:
            conn.execute(
                sa.text("update alerts set genesys_status = :s where alert_key = :k"),
                {"s": status, "k": alert["alert_key"]},
            )
        if status in FINAL_OK:
            with engine.begin() as conn:
                _move(
                    conn, alert["alert_key"], old="accepted", new="delivered", now=now, why=status
                )
            out.delivered += 1
        elif status in FAILED:
            permanent = bool(set(reasons) & PERMANENT_SMS_REASONS)
            _failed(
                engine,
                alert,
                f"{status} {','.join(reasons)}".strip(),
                old="accepted",
                permanent=permanent,
                ctx=ctx,
                result=send_result,
            )
        elif timed_out:
            with engine.begin() as conn:
                if status == "sent":
                    _move(
                        conn,
                        alert["alert_key"],
                        old="accepted",
                        new="sent",
                        now=now,
                        why="sent; no final receipt within the poll timeout",
                    )
                    out.sent += 1
                else:
                    _move(
                        conn,
                        alert["alert_key"],
                        old="accepted",
                        new="unknown",
                        now=now,
                        why=f"status {status or 'none'} at the poll timeout: not resent",
                    )
                    out.timed_out += 1
        else:
            out.pending += 1
    out.failed, out.retried, out.fallbacks = (
        send_result.failed,
        send_result.retried,
        send_result.fallbacks,
    )
    return out


def alert_counts(engine: Engine) -> dict[str, Any]:
    """Alerts per state, and (under ``_events``) events per state."""
    with engine.begin() as conn:
        alerts = {
            str(s): int(n)
            for s, n in conn.execute(sa.text("select state, count(*) from alerts group by state"))
        }
        events = {
            str(s): int(n)
            for s, n in conn.execute(
                sa.text("select state, count(*) from alert_events group by state")
            )
        }
    return alerts | {"_events": events}


# --- item 3: a payment cancels the reminders still pending for its invoice -------------------


def pending_reminders(
    engine: Engine, *, invoice_ids: Iterable[str] = (), customer_ids: Iterable[str] = ()
) -> pl.DataFrame:
    """Outbox reminders not yet sent (planned, ready, pushed) of these invoices or customers
    (the database returns only the rows that may match, not every live message; the exact
    invoice list is checked here)."""
    invoices, customers = sorted(set(invoice_ids)), sorted(set(customer_ids))
    if not invoices and not customers:
        return pl.DataFrame()
    with engine.begin() as conn:
        live = messages_in(
            conn, ("planned", "ready", "pushed"), invoice_ids=invoices, customer_ids=customers
        )
    if live.height == 0:
        return live
    hit = pl.lit(False)
    if invoices:
        hit = (
            hit
            | pl.col("invoice_ids")
            .str.split(",")
            .list.eval(pl.element().is_in(invoices))
            .list.any()
        )
    if customers:
        hit = hit | pl.col("customer_id").is_in(customers)
    return live.filter(hit)


def cancel_reminders(
    engine: Engine,
    client: GenesysClient | None,
    live: pl.DataFrame,
    *,
    reason: str,
    run_id: str,
    now: datetime,
) -> dict[str, int]:
    """Cancel the reminders in ``live`` (rows of ``messages``) the issue-8 way.

    ``planned`` and ``ready`` ones were never added to Genesys: cancelled at once. ``pushed``
    ones go through ``tasks.push._cancel``: made uncontactable, read back, then deleted, and
    only then ``cancelled`` (an attempt found on read-back is recorded as sent; an unverified
    one stays ``pushed`` with ``cancel_pending``). The planning decision gets ``reason``.
    """
    from tasks.push import PushResult, _cancel

    now = _naive(now)
    if live.height == 0:
        return {}
    planned = live.filter(pl.col("state") == "planned").select("message_key")
    counts: dict[str, int] = {}
    if planned.height:
        with engine.begin() as conn:
            n = transition(
                conn,
                planned,
                from_states=("planned",),
                to_state="cancelled",
                run_id=run_id,
                now=now,
                detail=reason,
            )
            exclude_decisions(conn, planned, reason=reason, detail="payment alert / keyword")
        counts["planned"] = n
    rest = live.filter(pl.col("state").is_in(["ready", "pushed"]))
    if rest.height:
        if client is None and rest.filter(pl.col("state") == "pushed").height:
            rest = rest.filter(pl.col("state") == "ready")
        stale = rest.select("message_key", pl.lit(reason).alias("detail"))
        result = PushResult()
        _cancel(engine, client, stale, rest, run_id=run_id, now=now, result=result)  # type: ignore[arg-type]
        counts |= {k: v for k, v in result.cancelled.items()}
        if result.cancel_pending:
            counts["cancel_pending"] = result.cancel_pending
    return counts


def cancel_for_payments(
    engine: Engine,
    client: GenesysClient | None,
    paid: Iterable[tuple[str, str]],
    *,
    now: datetime,
) -> int:
    """For each (event_id, invoice_id) of a payment_received event: cancel the invoice's
    pending reminders (``paid_since_planning``) and mark the event ``done`` (one read of the
    outbox for the whole batch; events whose invoice has nothing pending in one update)."""
    paid = list(paid)
    if not paid:
        return 0
    live = pending_reminders(engine, invoice_ids=[i for _, i in paid])
    hits: dict[str, pl.DataFrame] = {}
    if live.height:
        exploded = live.with_columns(_inv=pl.col("invoice_ids").str.split(",")).explode(
            "_inv", empty_as_null=True
        )
        for event_id, invoice_id in paid:
            rows = live.filter(
                pl.col("message_key").is_in(
                    exploded.filter(pl.col("_inv") == invoice_id)["message_key"].to_list()
                )
            )
            if rows.height:
                hits[event_id] = rows
    quiet = [e for e, _ in paid if e not in hits]
    if quiet:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "update alert_events set state = 'done', cancelled_reminders = 0,"
                    " updated_at_utc = :n where event_id in :ids"
                ).bindparams(sa.bindparam("ids", expanding=True)),
                {"n": _naive(now), "ids": quiet},
            )
    total = 0
    for event_id, rows in hits.items():
        counts = cancel_reminders(
            engine, client, rows, reason="paid_since_planning", run_id=f"alert-{event_id}", now=now
        )
        pending = counts.get("cancel_pending", 0)
        cancelled = sum(v for k, v in counts.items() if k != "cancel_pending")
        total += cancelled
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "update alert_events set state = :s, cancelled_reminders = :c,"
                    " state_reason = :r, updated_at_utc = :n where event_id = :e"
                ),
                {
                    "s": "alerted" if pending else "done",
                    "c": cancelled,
                    "r": f"{pending} cancel_pending" if pending else None,
                    "n": _naive(now),
                    "e": event_id,
                },
            )
    return total
