"""In-memory state of one sandbox org: entities, the virtual clock, the ledger, carrier records.

Contract
--------
* One :class:`Store` per app; every read or write happens under ``Store.lock`` (uvicorn runs
  the app in one process and requests may interleave).  A handler validates the whole request
  before it writes, inside one critical section, so a request's change is all-or-nothing.
* The virtual clock ``now`` (naive UTC) only moves through :func:`genesys_sandbox.runner.run`.
* The **ledger** is the sandbox's ground truth of what was sent: one entry per message, never
  removed by deleting contacts or lists.  Entry keys: ``ledger_id, contact_id,
  contact_list_id, campaign_id, conversation_id, message_id, channel ("sms"|"email"), to,
  from, subject, body, body_html (e-mail), segments, encoding, sent_at, outcome, error_code,
  source ("campaign"|"agentless"), carrier_sid, recycle, wrapup_code`` (``carrier_sid`` is the
  Twilio ``sid`` for SMS, else ``null``; ``recycle`` is the campaign's pass number, 0 before
  the first recycle; ``wrapup_code`` the code the campaign recorded; both ``null`` for
  agentless sends).  ``attempts`` lists every campaign attempt, including those that sent
  nothing (blank, too long), with its wrap-up code; skips are not attempts.
  ``outcome`` is ``delivered``, ``undelivered`` (30003), ``invalid_number`` (21211),
  ``opted_out`` (21610) or, for e-mail, ``bounced``.  A duplicate is the same key sent twice,
  where the key is ``(channel, contact id, to)`` for campaign sends and ``(channel, to,
  body)`` for agentless ones; ``duplicates`` in the snapshot lists the campaign keys sent
  more than once.
* ``segments``/``encoding`` of an SMS are the carrier's count
  (:func:`genesys_sandbox.segments.carrier_segments`), computed independently of the product.
* Contacts keep their *system data* (``sms_evaluations``/``email_evaluations`` = already
  messaged) across upserts unless ``clearSystemData=true``.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from genesys_sandbox.carrier import (
    AWS_EUM,
    PRICE_CHANGE_AFTER,
    TWILIO,
    CarrierMessage,
    Outcome,
    aws_message_id,
    email_outcome,
    is_us_or_ca,
    message_sid,
    sms_outcome,
)
from genesys_sandbox.clock import iso
from genesys_sandbox.config import SandboxConfig
from genesys_sandbox.segments import carrier_segments

__all__ = [
    "AgentlessMessage",
    "CallableTimeSet",
    "Campaign",
    "Contact",
    "ContactList",
    "DigitalRuleSet",
    "DncList",
    "ExportJob",
    "Store",
    "new_id",
    "normalize_phone",
]

HOME_DIVISION = {
    "id": "a3b4c5d6-0000-4000-8000-000000000001",
    "name": "Home",
    "selfUri": "/api/v2/authorization/divisions/a3b4c5d6-0000-4000-8000-000000000001",
}


def new_id() -> str:
    return str(uuid.uuid4())


def normalize_phone(number: str) -> str:
    """Digits only; a 10-digit number is taken as NANP and gets its leading 1 ([U])."""
    digits = "".join(ch for ch in number if ch.isdigit())
    return "1" + digits if len(digits) == 10 else digits


@dataclass
class Contact:
    id: str
    data: dict[str, str]
    date_created: datetime
    queue_key: tuple[int, int, int]
    priority: bool = False
    callable: bool = True
    phone_number_status: dict[str, bool] = field(default_factory=dict)
    contactable_status: dict[str, dict[str, Any]] = field(default_factory=dict)
    sms_evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)
    email_evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)
    retention: dict[str, Any] = field(default_factory=dict)
    hold_until_recycle: bool = False

    def contactable(self, media: str, column: str) -> bool:
        status = self.contactable_status.get(media) or {}
        if status.get("contactable") is False:
            return False
        column_status = (status.get("columnStatus") or {}).get(column) or {}
        return column_status.get("contactable") is not False

    def clear_system_data(self) -> None:
        """Attempts and callable status go (row 27); the caller re-applies any sent flags."""
        self.sms_evaluations.clear()
        self.email_evaluations.clear()
        self.callable = True
        self.phone_number_status = {}
        self.contactable_status = {}


@dataclass
class ExportJob:
    download_id: str
    content: bytes
    created_at: datetime
    polls: int = 0


@dataclass
class ContactList:
    id: str
    name: str
    column_names: list[str]
    phone_columns: list[dict[str, str]]
    email_columns: list[dict[str, str]]
    extra: dict[str, Any]
    date_created: datetime
    date_modified: datetime
    version: int = 1
    contacts: dict[str, Contact] = field(default_factory=dict)
    export: ExportJob | None = None

    @property
    def phone_column_names(self) -> list[str]:
        return [c["columnName"] for c in self.phone_columns]

    @property
    def email_column_names(self) -> list[str]:
        return [c["columnName"] for c in self.email_columns]

    def zone_column(self, column: str) -> str | None:
        """The column holding the contact's IANA zone for phone or e-mail column ``column``."""
        for spec in self.phone_columns:
            if spec["columnName"] == column:
                return spec.get("callableTimeColumn") or None
        for spec in self.email_columns:
            if spec["columnName"] == column:
                return spec.get("contactableTimeColumn") or None
        return None


@dataclass
class DncList:
    id: str
    name: str
    dnc_source_type: str
    contact_method: str
    extra: dict[str, Any]
    date_created: datetime
    date_modified: datetime
    version: int = 1
    phones: dict[str, datetime | None] = field(default_factory=dict)
    emails: dict[str, datetime | None] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.phones) + len(self.emails)

    def entry(self, channel: str, address: str) -> tuple[bool, datetime | None]:
        """(listed, expiry) of ``address`` for ``channel`` ("sms" or "email")."""
        if channel == "sms" and self.contact_method in ("Phone", "Any"):
            key = normalize_phone(address)
            if key in self.phones:
                return True, self.phones[key]
        if channel == "email" and self.contact_method in ("Email", "Any"):
            key = address.strip().lower()
            if key in self.emails:
                return True, self.emails[key]
        return False, None


@dataclass
class CallableTimeSet:
    id: str
    name: str
    callable_times: list[dict[str, Any]]
    date_created: datetime
    date_modified: datetime
    version: int = 1


@dataclass
class Campaign:
    id: str
    name: str
    status: str
    contact_list_id: str
    messages_per_minute: int
    date_created: datetime
    date_modified: datetime
    callable_time_set_id: str | None = None
    dnc_list_ids: list[str] = field(default_factory=list)
    always_running: bool = False
    contact_sorts: list[dict[str, Any]] = field(default_factory=list)
    sms_config: dict[str, Any] | None = None
    email_config: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    rule_set_ids: list[str] = field(default_factory=list)
    attempted: set[str] = field(default_factory=set)
    skipped: dict[str, str] = field(default_factory=dict)
    # Pass state: ``recycles`` counts recycles; ``handled`` holds the contacts attempted or
    # skipped in the current pass; ``rescheduled`` those that waited for their window.
    recycles: int = 0
    handled: set[str] = field(default_factory=set)
    attempted_in_pass: int = 0
    rescheduled: set[str] = field(default_factory=set)
    waiting: dict[str, str] = field(default_factory=dict)

    def recycle(self) -> None:
        """Start the next pass: every contact may be reached again."""
        self.recycles += 1
        self.handled.clear()
        self.skipped.clear()
        self.rescheduled.clear()
        self.attempted_in_pass = 0

    @property
    def channel(self) -> str:
        return "sms" if self.sms_config is not None else "email"

    @property
    def sender_number(self) -> str | None:
        if self.sms_config is None:
            return None
        return (self.sms_config.get("senderSmsPhoneNumber") or {}).get("phoneNumber")


@dataclass
class DigitalRuleSet:
    id: str
    name: str
    contact_list_id: str | None
    rules: list[dict[str, Any]]
    date_created: datetime
    date_modified: datetime
    version: int = 1


@dataclass
class AgentlessMessage:
    id: str
    conversation_id: str
    from_address: str
    to_address: str
    text: str
    sent_at: datetime
    outcome: Outcome
    carrier_sid: str
    use_existing_active_conversation: bool


class Store:
    """All mutable state; see the module docstring for the locking contract."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        self.now: datetime = self.config.clock_start
        self.contact_lists: dict[str, ContactList] = {}
        self.dnc_lists: dict[str, DncList] = {}
        self.time_sets: dict[str, CallableTimeSet] = {}
        self.campaigns: dict[str, Campaign] = {}
        self.rule_sets: dict[str, DigitalRuleSet] = {}
        self.libraries: dict[str, dict[str, Any]] = {}
        self.responses: dict[str, dict[str, Any]] = {}
        self.attempts: list[dict[str, Any]] = []
        self.messages: dict[str, AgentlessMessage] = {}
        self.conversations: dict[tuple[str, str], str] = {}
        self.downloads: dict[str, bytes] = {}
        self.ledger: list[dict[str, Any]] = []
        self.carrier: list[CarrierMessage] = []
        self.carrier_injected: list[dict[str, Any]] = []
        self.datatables: dict[str, Any] = {}  # routes/datatables.py: id -> DataTable
        self._queue_seq = 0

    def next_queue_seq(self) -> int:
        self._queue_seq += 1
        return self._queue_seq

    def name_taken(
        self, entities: dict[str, Any], name: str, *, except_id: str | None = None
    ) -> bool:
        folded = name.casefold()
        return any(e.name.casefold() == folded and e.id != except_id for e in entities.values())

    def send_sms(
        self,
        *,
        sender: str,
        to: str,
        body: str,
        outcome_key: str,
        at: datetime,
        source: str,
        contact_id: str | None = None,
        contact_list_id: str | None = None,
        campaign_id: str | None = None,
        conversation_id: str | None = None,
        message_id: str | None = None,
        recycle: int | None = None,
    ) -> tuple[Outcome, CarrierMessage]:
        """Hand one SMS to the carrier and record it in the ledger."""
        outcome = sms_outcome(outcome_key, self.config.delivery_seed)
        parts = carrier_segments(body)
        record = self._carrier_record(
            sender=sender,
            to=to,
            body=body,
            segments=parts.count,
            outcome=outcome,
            at=at,
            reference=contact_id or to,
            ledger_id=len(self.ledger) + 1,
        )
        self.ledger.append(
            {
                "ledger_id": len(self.ledger) + 1,
                "contact_id": contact_id,
                "contact_list_id": contact_list_id,
                "campaign_id": campaign_id,
                "conversation_id": conversation_id,
                "message_id": message_id,
                "channel": "sms",
                "to": to,
                "from": sender,
                "subject": None,
                "body": body,
                "segments": parts.count,
                "encoding": parts.encoding,
                "sent_at": iso(at),
                "outcome": outcome.name,
                "error_code": outcome.error_code,
                "source": source,
                "carrier_sid": record.sid,
                "recycle": recycle,
                "wrapup_code": None,
            }
        )
        return outcome, record

    def _next_sid(self, carrier: str) -> str:
        sequence = len(self.carrier) + 1
        if carrier == AWS_EUM:
            return aws_message_id(self.config.delivery_seed, sequence)
        return message_sid(self.config.delivery_seed, sequence)

    def _injected(self, kind: str, sid: str) -> bool:
        rate = getattr(self.config, f"carrier_{kind}_rate")
        if rate <= 0:
            return False
        digest = hashlib.sha256(f"{self.config.delivery_seed}:{kind}:{sid}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < rate

    def _carrier_record(
        self,
        *,
        sender: str,
        to: str,
        body: str,
        segments: int,
        outcome: Outcome,
        at: datetime,
        reference: str,
        ledger_id: int,
    ) -> CarrierMessage:
        """The carrier record of one send, with any injected discrepancies (see module doc)."""
        aws = self.config.carrier_routing == "non_nanp_aws" and not is_us_or_ca(to)
        carrier = AWS_EUM if aws else TWILIO
        sid = self._next_sid(carrier)
        truth: dict[str, Any] = {
            "carrier": carrier,
            "carrier_message_id": sid,
            "ledger_id": ledger_id,
            "reference": reference,
            "to": to,
            "sent_at": iso(at),
        }
        billed = segments
        if self._injected("segment_mismatch", sid):
            billed = segments + 1
            self.carrier_injected.append(
                truth | {"kind": "segment_mismatch", "detail": f"billed {billed}, sent {segments}"}
            )
        pending = self._injected("pending", sid)
        if pending:
            self.carrier_injected.append(
                truth | {"kind": "stays_pending", "detail": "never priced"}
            )
        change = None
        if not pending and self._injected("price_change", sid):
            change = at + PRICE_CHANGE_AFTER
            self.carrier_injected.append(
                truth | {"kind": "price_change", "detail": f"price x1.5 at {iso(change)}"}
            )
        record = CarrierMessage(
            sid=sid,
            sender=sender,
            to=to,
            body=body,
            segments=billed,
            outcome=outcome,
            sent_at=at,
            carrier=carrier,
            reference=reference,
            stays_pending=pending,
            price_change_at=change,
        )
        self.carrier.append(record)
        if self._injected("billed_twice", sid):
            twin = replace(record, sid=self._next_sid(carrier))
            self.carrier.append(twin)
            self.carrier_injected.append(
                truth
                | {
                    "kind": "billed_twice",
                    "carrier_message_id": twin.sid,
                    "detail": f"second record of {sid}",
                }
            )
        if self._injected("phantom", sid):
            digits = int.from_bytes(hashlib.sha256(sid.encode()).digest()[:4], "big") % 10_000
            ghost = replace(
                record,
                sid=self._next_sid(carrier),
                to=f"+1202555{digits:04d}",
                reference=None,
                price_change_at=None,
                stays_pending=False,
            )
            self.carrier.append(ghost)
            self.carrier_injected.append(
                truth
                | {
                    "kind": "billed_not_sent",
                    "carrier_message_id": ghost.sid,
                    "ledger_id": None,
                    "reference": None,
                    "to": ghost.to,
                    "detail": "a record for a send that did not happen",
                }
            )
        return record

    def send_email(
        self,
        *,
        sender: str,
        to: str,
        subject: str,
        body: str,
        outcome_key: str,
        body_html: str | None = None,
        at: datetime,
        source: str,
        contact_id: str | None = None,
        contact_list_id: str | None = None,
        campaign_id: str | None = None,
        conversation_id: str | None = None,
        message_id: str | None = None,
        recycle: int | None = None,
    ) -> Outcome:
        """Record one e-mail in the ledger (no carrier record: Twilio carries SMS only)."""
        outcome = email_outcome(outcome_key, self.config.delivery_seed)
        self.ledger.append(
            {
                "ledger_id": len(self.ledger) + 1,
                "contact_id": contact_id,
                "contact_list_id": contact_list_id,
                "campaign_id": campaign_id,
                "conversation_id": conversation_id,
                "message_id": message_id,
                "channel": "email",
                "to": to,
                "from": sender,
                "subject": subject,
                "body": body,
                "body_html": body_html,
                "segments": None,
                "encoding": None,
                "sent_at": iso(at),
                "outcome": outcome.name,
                "error_code": outcome.error_code,
                "source": source,
                "carrier_sid": None,
                "recycle": recycle,
                "wrapup_code": None,
            }
        )
        return outcome

    def ledger_snapshot(self) -> dict[str, Any]:
        keys = Counter(
            (m["channel"], "contact", m["contact_id"], m["to"])
            if m["source"] == "campaign"
            else (m["channel"], "agentless", m["to"], m["body"])
            for m in self.ledger
        )
        total = len(self.ledger)
        repeated = [
            {"channel": k[0], "contact_id": k[2], "to": k[3], "sends": n}
            for k, n in keys.items()
            if k[1] == "contact" and n > 1
        ]
        return {
            "messages": [dict(m) for m in self.ledger],
            "attempts": [dict(a) for a in self.attempts],
            "duplicates": repeated,
            "counts": {
                "total": total,
                "distinct_contacts": len(keys),
                "duplicates": total - len(keys),
                "attempts": len(self.attempts),
            },
        }
