"""JSON renderings of the sandbox's entities, key for key as the SDK 269 models name them.

Contract: every function returns plain JSON data using only keys of the matching
``PureCloudPlatformClientV2`` model (checked by ``tests/sandbox/test_sdk_compat.py``), except
the deliberate legacy ``textBody`` on the agentless response (SDK 150 had it; older
data-action contracts still read it).  Callers hold the store lock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from genesys_sandbox.carrier import Outcome
from genesys_sandbox.clock import iso
from genesys_sandbox.store import (
    HOME_DIVISION,
    AgentlessMessage,
    CallableTimeSet,
    Campaign,
    Contact,
    ContactList,
    DigitalRuleSet,
    DncList,
    Store,
)
from genesys_sandbox.wrapups import LEGACY_CODES

__all__ = [
    "WRAPUP_CODES",
    "agentless_response",
    "callable_time_set_view",
    "campaign_progress",
    "campaign_view",
    "contact_list_view",
    "contact_view",
    "diagnostics_view",
    "digital_rule_set_view",
    "dnc_list_view",
    "message_data",
]

CONTACT_LISTS = "/api/v2/outbound/contactlists"
DNC_LISTS = "/api/v2/outbound/dnclists"
TIME_SETS = "/api/v2/outbound/callabletimesets"
CAMPAIGNS = "/api/v2/outbound/messagingcampaigns"

RULE_SETS = "/api/v2/outbound/digitalrulesets"
WRAPUP_CODES = LEGACY_CODES  # the ``wrapup_codes=legacy`` vocabulary (see ``wrapups``)

QUEUED_FOR = timedelta(minutes=1)
SENT_FOR = timedelta(minutes=2)


def _ref(path: str, entity_id: str, name: str | None) -> dict[str, Any]:
    ref: dict[str, Any] = {"id": entity_id}
    if name is not None:
        ref["name"] = name
    ref["selfUri"] = f"{path}/{entity_id}"
    return ref


def contact_list_view(cl: ContactList) -> dict[str, Any]:
    return {
        "id": cl.id,
        "name": cl.name,
        "dateCreated": iso(cl.date_created),
        "dateModified": iso(cl.date_modified),
        "version": cl.version,
        "division": dict(HOME_DIVISION),
        "columnNames": list(cl.column_names),
        "phoneColumns": [dict(c) for c in cl.phone_columns],
        "emailColumns": [dict(c) for c in cl.email_columns],
        **cl.extra,
        "size": len(cl.contacts),
        "selfUri": f"{CONTACT_LISTS}/{cl.id}",
    }


def contact_view(cl: ContactList, contact: Contact) -> dict[str, Any]:
    stored = contact.contactable_status

    def status(media: str, columns: list[str]) -> dict[str, Any]:
        if stored.get(media):
            column_status = {c: {"contactable": contact.contactable(media, c)} for c in columns}
            reachable = any(v["contactable"] for v in column_status.values())
        else:  # no flags stored for the media (the usual new contact): every column is
            column_status = {c: {"contactable": True} for c in columns}
            reachable = bool(columns)
        return {"contactable": reachable, "columnStatus": column_status}

    phones, emails = cl.phone_column_names, cl.email_column_names
    contactable: dict[str, Any] = {}
    if phones:
        contactable["Voice"] = status("Voice", phones)
        contactable["SMS"] = status("SMS", phones)
    if emails:
        contactable["Email"] = status("Email", emails)
    view: dict[str, Any] = {
        "id": contact.id,
        "contactListId": cl.id,
        "data": dict(contact.data),
        "callable": contact.callable,
        "phoneNumberStatus": {
            c: {"callable": contact.phone_number_status.get(c, True)} for c in phones
        },
        "contactableStatus": contactable,
    }
    if contact.sms_evaluations:
        view["latestSmsEvaluations"] = {k: dict(v) for k, v in contact.sms_evaluations.items()}
    if contact.email_evaluations:
        view["latestEmailEvaluations"] = {k: dict(v) for k, v in contact.email_evaluations.items()}
    if contact.priority:
        view["configurationOverrides"] = {"priority": True}
    view["dateCreated"] = iso(contact.date_created)
    view.update(contact.retention)
    view["selfUri"] = f"{CONTACT_LISTS}/{cl.id}/contacts/{contact.id}"
    return view


def dnc_list_view(dnc: DncList) -> dict[str, Any]:
    return {
        "id": dnc.id,
        "name": dnc.name,
        "dateCreated": iso(dnc.date_created),
        "dateModified": iso(dnc.date_modified),
        "version": dnc.version,
        "size": dnc.size,
        "dncSourceType": dnc.dnc_source_type,
        "contactMethod": dnc.contact_method,
        **dnc.extra,
        "division": dict(HOME_DIVISION),
        "selfUri": f"{DNC_LISTS}/{dnc.id}",
    }


def callable_time_set_view(ts: CallableTimeSet) -> dict[str, Any]:
    return {
        "id": ts.id,
        "name": ts.name,
        "dateCreated": iso(ts.date_created),
        "dateModified": iso(ts.date_modified),
        "version": ts.version,
        "callableTimes": [
            {**t, "timeSlots": [dict(s) for s in t["timeSlots"]]} for t in ts.callable_times
        ],
        "selfUri": f"{TIME_SETS}/{ts.id}",
    }


def campaign_view(store: Store, campaign: Campaign) -> dict[str, Any]:
    cl = store.contact_lists.get(campaign.contact_list_id)
    view: dict[str, Any] = {
        "id": campaign.id,
        "name": campaign.name,
        "dateCreated": iso(campaign.date_created),
        "dateModified": iso(campaign.date_modified),
        "version": campaign.version,
        "division": dict(HOME_DIVISION),
        "campaignStatus": campaign.status,
    }
    if campaign.callable_time_set_id is not None:
        ts = store.time_sets.get(campaign.callable_time_set_id)
        view["callableTimeSet"] = _ref(
            TIME_SETS, campaign.callable_time_set_id, ts.name if ts else None
        )
    view["contactList"] = _ref(CONTACT_LISTS, campaign.contact_list_id, cl.name if cl else None)
    view["dncLists"] = [
        _ref(DNC_LISTS, i, d.name if (d := store.dnc_lists.get(i)) else None)
        for i in campaign.dnc_list_ids
    ]
    view["alwaysRunning"] = campaign.always_running
    view["contactSorts"] = [dict(s) for s in campaign.contact_sorts]
    view["messagesPerMinute"] = campaign.messages_per_minute
    if campaign.rule_set_ids:
        view["ruleSets"] = [
            _ref(RULE_SETS, i, r.name if (r := store.rule_sets.get(i)) else None)
            for i in campaign.rule_set_ids
        ]
    view.update(campaign.extra)
    view["errors"] = []
    if campaign.sms_config is not None:
        view["smsConfig"] = campaign.sms_config
    if campaign.email_config is not None:
        view["emailConfig"] = campaign.email_config
    view["selfUri"] = f"{CAMPAIGNS}/{campaign.id}"
    return view


def campaign_progress(store: Store, campaign: Campaign) -> dict[str, Any]:
    cl = store.contact_lists.get(campaign.contact_list_id)
    contacts = cl.contacts if cl else {}
    total = len(contacts)
    messaged = sum(1 for cid in campaign.attempted if cid in contacts)
    skipped: dict[str, int] = {}
    for cid, reason in {**campaign.skipped, **campaign.waiting}.items():
        if cid in contacts:
            skipped[reason] = skipped.get(reason, 0) + 1
    return {
        "campaign": _ref(CAMPAIGNS, campaign.id, campaign.name),
        "contactList": _ref(CONTACT_LISTS, campaign.contact_list_id, cl.name if cl else None),
        "numberOfContactsCalled": messaged,
        "numberOfContactsMessaged": messaged,
        "totalNumberOfContacts": total,
        "percentage": (messaged * 100 // total) if total else 0,
        "numberOfContactsSkipped": skipped,
    }


def diagnostics_view(campaign: Campaign) -> dict[str, Any]:
    return {
        "timeZoneRescheduledContactsCount": len(campaign.rescheduled),
        "filteredOutContactsCount": 0,
    }


def digital_rule_set_view(rule_set: DigitalRuleSet, store: Store) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": rule_set.id,
        "name": rule_set.name,
        "dateCreated": iso(rule_set.date_created),
        "dateModified": iso(rule_set.date_modified),
        "version": rule_set.version,
    }
    if rule_set.contact_list_id is not None:
        cl = store.contact_lists.get(rule_set.contact_list_id)
        view["contactList"] = _ref(CONTACT_LISTS, rule_set.contact_list_id, cl.name if cl else None)
    view["rules"] = [
        {
            **{k: v for k, v in rule.items() if k not in ("conditions", "actions")},
            "conditions": [dict(c) for c in rule["conditions"]],
            "actions": [dict(a) for a in rule["actions"]],
        }
        for rule in rule_set.rules
    ]
    view["selfUri"] = f"{RULE_SETS}/{rule_set.id}"
    return view


_FINAL = {
    "delivered": ("delivery-success", "Delivered", None),
    "undelivered": ("delivery-failed", "Failed", "GeneralError"),
    "invalid_number": ("failed", "Failed", "InvalidDestination"),
    "opted_out": ("failed", "Failed", "RecipientOptedOut"),
}


def _status_at(outcome: Outcome, age: timedelta) -> tuple[str, str | None, str | None]:
    """(MessageData.status, normalizedMessage.status, reason code) after ``age``."""
    if age < QUEUED_FOR:
        return "queued", None, None
    final = _FINAL[outcome.name]
    if final[0] == "failed" or age >= SENT_FOR:
        return final
    return "sent", "Sent", None


def message_data(store: Store, message: AgentlessMessage, now: datetime) -> dict[str, Any]:
    status, normalized_status, reason = _status_at(message.outcome, now - message.sent_at)
    normalized: dict[str, Any] = {
        "id": message.id,
        "channel": {
            "platform": "Sms",
            "type": "Private",
            "messageId": message.id,
            "to": {"id": message.to_address, "idType": "Phone"},
            "from": {"id": message.from_address, "idType": "Phone"},
            "time": iso(message.sent_at),
        },
        "type": "Text",
        "text": message.text,
    }
    if normalized_status is not None:
        normalized["status"] = normalized_status
    if reason is not None:
        normalized["reasons"] = [{"code": reason, "message": message.outcome.error_message}]
    normalized["isFinalReceipt"] = status in ("delivery-success", "delivery-failed", "failed")
    normalized["direction"] = "Outbound"
    data: dict[str, Any] = {"id": message.id}
    if status != "queued":
        data["providerMessageId"] = message.carrier_sid
    data.update(
        {
            "timestamp": iso(message.sent_at),
            "fromAddress": message.from_address,
            "toAddress": message.to_address,
            "direction": "outbound",
            "messengerType": "sms",
            "status": status,
            "normalizedMessage": normalized,
            "conversationId": message.conversation_id,
            "selfUri": _message_uri(message),
        }
    )
    return data


def _message_uri(message: AgentlessMessage) -> str:
    return f"/api/v2/conversations/messages/{message.conversation_id}/messages/{message.id}"


def agentless_response(store: Store, message: AgentlessMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "conversationId": message.conversation_id,
        "fromAddress": message.from_address,
        "toAddress": message.to_address,
        "messengerType": "sms",
        "textBody": message.text,
        "useExistingActiveConversation": message.use_existing_active_conversation,
        "message": message_data(store, message, message.sent_at),
        "timestamp": iso(message.sent_at),
        "selfUri": _message_uri(message),
    }
