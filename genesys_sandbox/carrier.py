"""Delivery outcomes and the carriers' records of every SMS the sandbox sends.

Contract
--------
* The outcome of a send is a pure function of ``(key, delivery_seed)``: about 92 % delivered,
  3 % undelivered (30003), 3 % invalid number (21211), 2 % opted out (21610).  Campaign sends
  use the contact id as key, agentless sends the destination number.  E-mail: 97 % delivered,
  3 % bounced.
* Records follow Twilio's Message resource (``/2010-04-01/Accounts/{AC}/Messages/{SM}.json``):
  snake_case keys, ``num_segments``/``num_media`` as strings, RFC 2822 dates.  ``sid`` is
  ``SM`` + 32 hex digits derived from the seed and the send's sequence number.
* ``price`` is ``null`` until 10 virtual minutes after the send, then a negative decimal
  string with 5 places: -0.0079 per segment to US/CA numbers, -0.0450 elsewhere; ``failed``
  messages (never handed to a carrier) are priced ``0.00000``.  Status is final at once.
* A second carrier, AWS End User Messaging SMS (``aws_eum``), carries the sends that
  ``carrier_routing=non_nanp_aws`` routes to it (numbers outside US/CA): ``messageId`` is a
  UUID derived from the seed and sequence number, and each message is a list of events
  (:meth:`CarrierMessage.aws_events`): ``TEXT_PENDING`` at the send (no price), the final event
  (``TEXT_DELIVERED``, ``TEXT_CARRIER_UNREACHABLE``, ``TEXT_INVALID``, ``TEXT_BLOCKED``) with
  ``isFinal`` and a positive dollar price 10 minutes later; ``context.reminder`` carries the
  contact id (the sender's reference).  Times are epoch milliseconds.
* Twilio BulkExport day files (:meth:`CarrierMessage.bulkexport`): the Message fields minus
  ``price_unit``, ``api_version``, ``error_message``, ``uri``, ``subresource_uris``, ISO dates.
* Injected discrepancies (``store.Store.send_sms``; ground truth in ``store.carrier_injected``):
  ``stays_pending`` (never priced, never final), ``price_change_at`` (the price is raised by
  half at that instant, 49 h after the send), a segment count that differs from the real one,
  and extra records (a send billed twice, a record for a send that never happened).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

import phonenumbers

from genesys_sandbox.clock import iso, rfc2822

__all__ = [
    "ACCOUNT_SID",
    "AWS_EUM",
    "BOUNCED",
    "DELIVERED",
    "INVALID_NUMBER",
    "OPTED_OUT",
    "PRICE_CHANGE_AFTER",
    "PRICING_DELAY",
    "TWILIO",
    "UNREACHABLE",
    "CarrierMessage",
    "Outcome",
    "aws_message_id",
    "email_outcome",
    "is_us_or_ca",
    "message_sid",
    "sms_outcome",
]

ACCOUNT_SID = "AC" + hashlib.sha256(b"genesys-sandbox-account").hexdigest()[:32]
PRICING_DELAY = timedelta(minutes=10)
PRICE_NANP = Decimal("-0.0079")
PRICE_OTHER = Decimal("-0.0450")
PRICE_CHANGE_AFTER = timedelta(hours=49)
TWILIO = "twilio"
AWS_EUM = "aws_eum"
_AWS_FINAL = {
    "delivered": "TEXT_DELIVERED",
    "undelivered": "TEXT_CARRIER_UNREACHABLE",
    "invalid_number": "TEXT_INVALID",
    "opted_out": "TEXT_BLOCKED",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one message.  ``name`` is the ledger's ``outcome``."""

    name: str
    error_code: int | None = None
    error_message: str | None = None
    twilio_status: str = "delivered"

    @property
    def delivered(self) -> bool:
        return self.name == "delivered"


DELIVERED = Outcome("delivered")
UNREACHABLE = Outcome("undelivered", 30003, "Unreachable destination handset", "undelivered")
INVALID_NUMBER = Outcome("invalid_number", 21211, "Invalid 'To' Phone Number", "failed")
OPTED_OUT = Outcome("opted_out", 21610, "Attempt to send to unsubscribed recipient", "failed")
BOUNCED = Outcome("bounced", None, "Mailbox unavailable", "failed")


def _bucket(key: str, seed: int) -> int:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def sms_outcome(key: str, seed: int) -> Outcome:
    bucket = _bucket(key, seed)
    if bucket < 92:
        return DELIVERED
    if bucket < 95:
        return UNREACHABLE
    if bucket < 98:
        return INVALID_NUMBER
    return OPTED_OUT


def email_outcome(key: str, seed: int) -> Outcome:
    return DELIVERED if _bucket(key, seed) < 97 else BOUNCED


def message_sid(seed: int, sequence: int) -> str:
    return "SM" + hashlib.sha256(f"twilio:{seed}:{sequence}".encode()).hexdigest()[:32]


def aws_message_id(seed: int, sequence: int) -> str:
    return str(uuid.UUID(hashlib.sha256(f"aws:{seed}:{sequence}".encode()).hexdigest()[:32]))


@lru_cache(maxsize=65536)
def is_us_or_ca(number: str) -> bool:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.region_code_for_number(parsed) in ("US", "CA")


@dataclass(frozen=True, slots=True)
class CarrierMessage:
    """One SMS as its carrier saw it; rendered in the carrier's layout at a virtual instant.

    ``segments`` is what the carrier bills (an injected mismatch differs from the ledger's).
    ``reference`` is the sender's reference (the contact id, or the number for agentless).
    """

    sid: str
    sender: str
    to: str
    body: str
    segments: int
    outcome: Outcome
    sent_at: datetime
    carrier: str = TWILIO
    reference: str | None = None
    stays_pending: bool = False
    price_change_at: datetime | None = None

    def _amount(self, now: datetime) -> Decimal | None:
        """The charge as a positive decimal of dollars, or None while unpriced."""
        if self.stays_pending or now < self.sent_at + PRICING_DELAY:
            return None
        if self.outcome.twilio_status == "failed":
            return Decimal("0.00000")
        rate = PRICE_NANP if is_us_or_ca(self.to) else PRICE_OTHER
        amount = -rate * self.segments
        if self.price_change_at is not None and now >= self.price_change_at:
            amount = amount * Decimal("1.5")
        return amount.quantize(Decimal("0.00001"))

    def price(self, now: datetime) -> str | None:
        amount = self._amount(now)
        return None if amount is None else f"{-amount:.5f}"

    def updated_at(self, now: datetime) -> datetime:
        if self._amount(now) is None:
            return self.sent_at + timedelta(seconds=3)
        if self.price_change_at is not None and now >= self.price_change_at:
            return self.price_change_at
        return self.sent_at + PRICING_DELAY

    def render(self, now: datetime) -> dict[str, object]:
        price = self.price(now)
        uri = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{self.sid}"
        return {
            "sid": self.sid,
            "account_sid": ACCOUNT_SID,
            "messaging_service_sid": None,
            "from": self.sender,
            "to": self.to,
            "body": self.body,
            "status": self.outcome.twilio_status,
            "num_segments": str(self.segments),
            "num_media": "0",
            "price": price,
            "price_unit": "USD",
            "error_code": self.outcome.error_code,
            "error_message": self.outcome.error_message,
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "date_created": rfc2822(self.sent_at),
            "date_sent": rfc2822(self.sent_at + timedelta(seconds=1)),
            "date_updated": rfc2822(self.updated_at(now)),
            "uri": f"{uri}.json",
            "subresource_uris": {"media": f"{uri}/Media.json"},
        }

    def bulkexport(self, now: datetime) -> dict[str, object]:
        """One line of a Twilio BulkExport day file (ISO dates; no price_unit, uri, ...)."""
        record = self.render(now)
        for gone in ("price_unit", "api_version", "error_message", "uri", "subresource_uris"):
            del record[gone]
        record["date_created"] = iso(self.sent_at)
        record["date_sent"] = iso(self.sent_at + timedelta(seconds=1))
        record["date_updated"] = iso(self.updated_at(now))
        if record["price"] is None:
            del record["price"]
        return record

    def aws_events(self, now: datetime) -> list[dict[str, object]]:
        """The AWS End User Messaging SMS events of this message emitted up to ``now``."""

        def event(kind: str, at: datetime, *, final: bool, price: Decimal | None) -> dict:
            body: dict[str, object] = {
                "eventType": kind,
                "eventVersion": "1.0",
                "eventTimestamp": _epoch_ms(at),
                "isFinal": final,
                "originationPhoneNumber": self.sender,
                "destinationPhoneNumber": self.to,
                "isInternationalSend": not is_us_or_ca(self.to),
                "messageId": self.sid,
                "messageRequestTimestamp": _epoch_ms(self.sent_at),
                "messageEncoding": "GSM",
                "messageType": "TRANSACTIONAL",
                "messageStatus": kind.removeprefix("TEXT_"),
                "context": {"account": "sandbox", "reminder": self.reference},
                "totalMessageParts": self.segments,
            }
            if price is not None:
                # A JSON number in dollars; float() of a 5-place decimal prints it exactly.
                body["totalMessagePrice"] = float(price)
                body["totalCarrierFee"] = 0.0
            return body

        events = [event("TEXT_PENDING", self.sent_at, final=False, price=None)]
        if self.stays_pending:
            accepted = self.sent_at + timedelta(seconds=3)
            if now >= accepted:
                events.append(event("TEXT_SUCCESSFUL", accepted, final=False, price=None))
            return [e for e in events if e["eventTimestamp"] <= _epoch_ms(now)]
        final_at = self.sent_at + PRICING_DELAY
        kind = _AWS_FINAL.get(self.outcome.name, "TEXT_INVALID")
        if now >= final_at:
            events.append(event(kind, final_at, final=True, price=self._amount(final_at)))
        change = self.price_change_at
        if change is not None and now >= change:
            events.append(event(kind, change, final=True, price=self._amount(change)))
        return [e for e in events if e["eventTimestamp"] <= _epoch_ms(now)]


def _epoch_ms(moment: datetime) -> int:
    return int(moment.replace(tzinfo=UTC).timestamp() * 1000)
