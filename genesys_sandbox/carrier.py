"""Delivery outcomes and the carrier's (Twilio's) record of every SMS the sandbox sends.

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
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache

import phonenumbers

from genesys_sandbox.clock import rfc2822

__all__ = [
    "ACCOUNT_SID",
    "BOUNCED",
    "DELIVERED",
    "INVALID_NUMBER",
    "OPTED_OUT",
    "PRICING_DELAY",
    "UNREACHABLE",
    "CarrierMessage",
    "Outcome",
    "email_outcome",
    "message_sid",
    "sms_outcome",
]

ACCOUNT_SID = "AC" + hashlib.sha256(b"genesys-sandbox-account").hexdigest()[:32]
PRICING_DELAY = timedelta(minutes=10)
PRICE_NANP = Decimal("-0.0079")
PRICE_OTHER = Decimal("-0.0450")


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


@lru_cache(maxsize=65536)
def _is_us_or_ca(number: str) -> bool:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.region_code_for_number(parsed) in ("US", "CA")


@dataclass(frozen=True, slots=True)
class CarrierMessage:
    """One SMS as the carrier saw it; rendered in Twilio's layout at a virtual instant."""

    sid: str
    sender: str
    to: str
    body: str
    segments: int
    outcome: Outcome
    sent_at: datetime

    def price(self, now: datetime) -> str | None:
        if now < self.sent_at + PRICING_DELAY:
            return None
        if self.outcome.twilio_status == "failed":
            return "0.00000"
        rate = PRICE_NANP if _is_us_or_ca(self.to) else PRICE_OTHER
        return f"{rate * self.segments:.5f}"

    def render(self, now: datetime) -> dict[str, object]:
        price = self.price(now)
        updated = self.sent_at + (PRICING_DELAY if price is not None else timedelta(seconds=3))
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
            "date_updated": rfc2822(updated),
            "uri": f"{uri}.json",
            "subresource_uris": {"media": f"{uri}/Media.json"},
        }
