"""Wrap-up codes a messaging campaign records, under the ``wrapup_codes`` switches.

Contract (BEHAVIOUR.md rows 45-48)
----------------------------------
* ``official`` (default): ``OUTBOUND-MESSAGE-SENT`` when the message is handed to the carrier.
  ``carrier_failure_wrapup=sent`` (default): carrier outcomes (undelivered, invalid number,
  opted out, bounced) never change it; they show only in the carrier records.  ``failed``:
  they record ``OUTBOUND-MESSAGE-FAILED`` (the platform "could not hand it off").
* ``OUTBOUND-MESSAGE-BLANK`` (empty message, ``blank_message=wrapup``) and
  ``OUTBOUND-MAX-MESSAGE-LENGTH-EXCEEDED`` (SMS longer than ``campaign_sms_max_length``
  UTF-16 units) are attempts that send nothing, in either reading of ``wrapup_codes``.
* ``legacy``: the sandbox's earlier invented vocabulary (:data:`LEGACY_CODES`).
* ``unknown_wrapup_rate``: that share of sends (a pure function of contact, pass and
  ``delivery_seed``) records a code no client can know: ``OUTBOUND-STUCK-CONTACT`` or
  ``X-UNKNOWN-<hex>``; the message is still handed to the carrier.
* Skip codes (``skip_wrapup=code`` only, no public source for messaging): a DNC skip records
  ``ININ-OUTBOUND-ON-DO-NOT-CALL-LIST`` (the voice code of the help center's list), a
  not-callable / not-contactable skip ``ININ-OUTBOUND-CONTACT-UNCALLABLE``, a time-zone skip
  ``ININ-OUTBOUND-ZONE-BLOCKED`` (both chosen here).  Under ``none`` a skip writes nothing.
"""

from __future__ import annotations

import hashlib

from genesys_sandbox.carrier import Outcome
from genesys_sandbox.config import SandboxConfig

__all__ = [
    "BLANK",
    "FAILED",
    "LEGACY_CODES",
    "SENT",
    "SKIP_CODES",
    "STUCK",
    "TOO_LONG",
    "send_code",
    "utf16_length",
]

SENT = "OUTBOUND-MESSAGE-SENT"
FAILED = "OUTBOUND-MESSAGE-FAILED"
BLANK = "OUTBOUND-MESSAGE-BLANK"
TOO_LONG = "OUTBOUND-MAX-MESSAGE-LENGTH-EXCEEDED"
STUCK = "OUTBOUND-STUCK-CONTACT"

LEGACY_CODES = {
    "delivered": "ININ-OUTBOUND-MESSAGE-DELIVERED",
    "undelivered": "ININ-OUTBOUND-MESSAGE-UNDELIVERED",
    "invalid_number": "ININ-OUTBOUND-INVALID-PHONE-NUMBER",
    "opted_out": "ININ-OUTBOUND-RECIPIENT-OPTED-OUT",
    "bounced": "ININ-OUTBOUND-MESSAGE-BOUNCED",
}

SKIP_CODES = {
    "dnc": "ININ-OUTBOUND-ON-DO-NOT-CALL-LIST",
    "not_callable": "ININ-OUTBOUND-CONTACT-UNCALLABLE",
    "not_contactable": "ININ-OUTBOUND-CONTACT-UNCALLABLE",
    "outside_contactable_time": "ININ-OUTBOUND-ZONE-BLOCKED",
}


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _unknown(config: SandboxConfig, key: str) -> str | None:
    if config.unknown_wrapup_rate <= 0:
        return None
    digest = hashlib.sha256(f"unknown:{config.delivery_seed}:{key}".encode()).digest()
    if int.from_bytes(digest[:8], "big") / 2**64 >= config.unknown_wrapup_rate:
        return None
    return STUCK if digest[8] % 2 == 0 else f"X-UNKNOWN-{digest[9:12].hex().upper()}"


def send_code(config: SandboxConfig, outcome: Outcome, key: str) -> str:
    """The wrap-up code of a message handed to the carrier with ``outcome``."""
    unknown = _unknown(config, key)
    if unknown is not None:
        return unknown
    if config.wrapup_codes == "legacy":
        return LEGACY_CODES[outcome.name]
    if config.carrier_failure_wrapup == "failed" and not outcome.delivered:
        return FAILED
    return SENT
