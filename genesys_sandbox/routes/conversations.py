"""Agentless messages: ``/api/v2/conversations/messages/agentless`` and its lookups.

Contract
--------
* SMS only (``toAddressMessengerType`` ``sms``): ``fromAddress`` must be a provisioned sender,
  ``toAddress`` E.164, ``textBody`` 1..765 UTF-16 code units (Genesys counts Java string
  length).  The answer is **202** with the SDK 269 shape plus the legacy ``textBody``; the
  message is in the ledger and at the carrier at once (no idempotency: a repeat sends again).
* Each send opens a new conversation unless ``useExistingActiveConversation`` is true and the
  from/to pair has one.  ``GET .../messages/{conversationId}/messages/{messageId}`` shows
  ``queued`` for the first virtual minute, then ``sent``, and the final status from the
  second minute on (``failed`` right after ``queued`` for invalid or opted-out numbers).
* ``POST /api/v2/conversations/emails/agentless`` sends one e-mail (200).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from genesys_sandbox.clock import iso
from genesys_sandbox.errors import bad_request, invalid_value, not_found
from genesys_sandbox.routes.common import (
    E164,
    ok,
    opt_bool,
    opt_str,
    read_json,
    req_object,
    req_str,
    sandbox_of,
)
from genesys_sandbox.store import AgentlessMessage, new_id
from genesys_sandbox.views import agentless_response, message_data

__all__ = ["routes"]

MAX_SMS_TEXT = 765
MESSENGER_TYPES = ("sms", "whatsapp", "open", "webmessaging", "apple")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


async def send_agentless(request: Request) -> Response:
    body = req_object(await read_json(request))
    messenger = req_str(body, "toAddressMessengerType")
    if messenger not in MESSENGER_TYPES:
        raise invalid_value(
            f"Unknown toAddressMessengerType '{messenger}'.", "toAddressMessengerType"
        )
    if messenger != "sms":
        raise invalid_value("The sandbox sends agentless SMS only.", "toAddressMessengerType")
    sender = req_str(body, "fromAddress")
    if body.get("externalContactId") is not None and body.get("toAddress") is None:
        raise invalid_value("The sandbox needs toAddress; externalContactId is not supported.")
    to = req_str(body, "toAddress")
    if not E164.match(to):
        raise invalid_value(f"toAddress '{to}' is not an E.164 phone number.", "toAddress")
    text = opt_str(body, "textBody")
    if not text:
        raise bad_request("textBody is required for SMS.", "textBody")
    if _utf16_length(text) > MAX_SMS_TEXT:
        raise invalid_value(
            f"textBody is longer than {MAX_SMS_TEXT} characters ({_utf16_length(text)}).",
            "textBody",
        )
    reuse = opt_bool(body, "useExistingActiveConversation", False)
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        if sender not in store.config.sms_sender_numbers:
            raise invalid_value(
                f"fromAddress '{sender}' is not an SMS number provisioned in this org.",
                "fromAddress",
            )
        conversation = store.conversations.get((sender, to)) if reuse else None
        conversation = conversation or new_id()
        store.conversations[(sender, to)] = conversation
        message_id = uuid.uuid4().hex
        outcome, record = store.send_sms(
            sender=sender,
            to=to,
            body=text,
            outcome_key=to,
            at=store.now,
            source="agentless",
            conversation_id=conversation,
            message_id=message_id,
        )
        message = AgentlessMessage(
            message_id, conversation, sender, to, text, store.now, outcome, record.sid, reuse
        )
        store.messages[message_id] = message
        return ok(agentless_response(store, message), status=202)


async def get_message(request: Request) -> Response:
    conversation_id = request.path_params["conversationId"]
    message_id = request.path_params["messageId"]
    sandbox = sandbox_of(request)
    with sandbox.lock:
        message = sandbox.store.messages.get(message_id)
        if message is None or message.conversation_id != conversation_id:
            raise not_found("message", message_id)
        return ok(message_data(sandbox.store, message, sandbox.store.now))


def _email_address(raw: Any, where: str) -> dict[str, str]:
    address = req_object(raw, where)
    email = req_str(address, "email", f"{where}.email")
    if not EMAIL.match(email):
        raise invalid_value(f"'{email}' is not an e-mail address.", f"{where}.email")
    out = {"email": email}
    name = opt_str(address, "name", f"{where}.name")
    if name is not None:
        out["name"] = name
    return out


async def send_agentless_email(request: Request) -> Response:
    body = req_object(await read_json(request))
    if req_str(body, "senderType") != "Outbound":
        raise invalid_value("senderType must be 'Outbound'.", "senderType")
    sender = _email_address(body.get("fromAddress"), "fromAddress")
    recipients = body.get("toAddresses")
    if not isinstance(recipients, list) or len(recipients) != 1:
        raise invalid_value("toAddresses must hold exactly one address.", "toAddresses")
    to = _email_address(recipients[0], "toAddresses[0]")
    subject = opt_str(body, "subject") or ""
    text = opt_str(body, "textBody") or opt_str(body, "htmlBody") or ""
    if not text:
        raise bad_request("textBody or htmlBody is required.", "textBody")
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        conversation = opt_str(body, "conversationId") or new_id()
        message_id = uuid.uuid4().hex
        store.send_email(
            sender=sender["email"],
            to=to["email"],
            subject=subject,
            body=text,
            outcome_key=to["email"].lower(),
            at=store.now,
            source="agentless",
            conversation_id=conversation,
            message_id=message_id,
        )
        answer: dict[str, Any] = {
            "id": message_id,
            "conversationId": conversation,
            "senderType": "Outbound",
            "fromAddress": sender,
            "toAddresses": [to],
            "subject": subject,
            "dateCreated": iso(store.now),
            "selfUri": f"/api/v2/conversations/emails/{conversation}/messages/{message_id}",
        }
        return ok(answer)


routes = [
    Route("/api/v2/conversations/messages/agentless", send_agentless, methods=["POST"]),
    Route(
        "/api/v2/conversations/messages/{conversationId}/messages/{messageId}",
        get_message,
        methods=["GET"],
    ),
    Route("/api/v2/conversations/emails/agentless", send_agentless_email, methods=["POST"]),
]
