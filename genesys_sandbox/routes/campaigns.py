"""``/api/v2/outbound/messagingcampaigns``: SMS and e-mail campaigns and their progress.

Contract
--------
* A campaign needs a unique ``name``, an existing ``contactList``, ``messagesPerMinute`` in
  1..10000 (upper bound assumed, [U]) and exactly one of ``smsConfig``/``emailConfig``.
  ``smsConfig``: ``phoneColumn`` (a phone column of the list), ``senderSmsPhoneNumber.
  phoneNumber`` (E.164, one of the sandbox's provisioned numbers) and ``messageColumn`` (a
  column of the list) or ``contentTemplate`` (a ``CampaignSmsTemplate`` response).
  ``emailConfig``: ``emailColumns`` (e-mail columns of the list), ``fromAddress`` with
  ``domain.id`` and ``localPart``, and ``contentTemplate`` (a ``CampaignEmailTemplate``
  response; without one the campaign is refused 400 under ``email_without_template=refuse``
  and sends empty mails under ``send_empty``).  Content rendering: ``genesys_sandbox.content``.
* Clients set ``campaignStatus`` ``on``/``off`` (PUT with the current ``version``, or POST
  ``/start``, ``/stop``); ``off`` takes effect at once.  A sender SMS number serves one running
  campaign: turning a second one on is 409 ``sender.sms.phone.number.in.use``.
* ``ruleSets`` must name existing digital rule sets (``rule_sets=refuse``: 400
  ``not.modelled``); the runner evaluates their post-contact rules.
* ``GET .../{id}/diagnostics`` answers ``MessagingCampaignDiagnostics``;
  ``DELETE .../{id}/progress`` recycles the campaign now (204).
* A running campaign cannot be deleted (409 ``resource.in.use``); DELETE answers the
  deleted campaign, as the SDK's ``delete_outbound_messagingcampaign`` expects.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from genesys_sandbox.errors import ApiError, bad_request, invalid_value, name_exists, not_found
from genesys_sandbox.routes.common import (
    E164,
    check_version,
    empty,
    name_filter,
    ok,
    opt_bool,
    opt_str,
    page,
    query_list,
    read_json,
    ref_id,
    req_list,
    req_object,
    req_str,
    sandbox_of,
)
from genesys_sandbox.store import Campaign, ContactList, Store, new_id
from genesys_sandbox.views import campaign_progress, campaign_view, diagnostics_view

__all__ = ["routes"]

MAX_MESSAGES_PER_MINUTE = 10000
MAX_CONTACT_SORTS = 4
ECHOED = ("contactListFilters", "dynamicContactQueueingSettings")
RUNNING = ("on", "stopping")


def _template(store: Store, template: str, kind: str, field: str) -> None:
    response = store.responses.get(template)
    if response is None:
        raise invalid_value(f"Content template (response) {template} does not exist.", field)
    if response.get("responseType") != kind:
        raise invalid_value(f"The content template must be a {kind} response.", field)


def _sms_config(raw: Any, cl: ContactList, store: Store) -> dict[str, Any]:
    senders = store.config.sms_sender_numbers
    cfg = req_object(raw, "smsConfig")
    phone = req_str(cfg, "phoneColumn", "smsConfig.phoneColumn")
    if phone not in cl.phone_column_names:
        raise invalid_value(
            f"smsConfig.phoneColumn '{phone}' is not a phone column of the contact list.",
            "smsConfig.phoneColumn",
        )
    sender_ref = cfg.get("senderSmsPhoneNumber")
    if not isinstance(sender_ref, dict):
        raise bad_request(
            "smsConfig.senderSmsPhoneNumber is required.", "smsConfig.senderSmsPhoneNumber"
        )
    field = "smsConfig.senderSmsPhoneNumber.phoneNumber"
    number = req_str(sender_ref, "phoneNumber", field)
    if not E164.match(number):
        raise invalid_value(f"'{number}' is not an E.164 phone number.", field)
    if number not in senders:
        raise invalid_value(f"'{number}' is not an SMS number provisioned in this org.", field)
    out: dict[str, Any] = {}
    message = opt_str(cfg, "messageColumn", "smsConfig.messageColumn")
    if message is not None:
        if message not in cl.column_names:
            raise invalid_value(
                f"smsConfig.messageColumn '{message}' is not a column of the contact list.",
                "smsConfig.messageColumn",
            )
        out["messageColumn"] = message
    out["phoneColumn"] = phone
    out["senderSmsPhoneNumber"] = {"phoneNumber": number}
    template = ref_id(cfg, "contentTemplate", "smsConfig.contentTemplate")
    if template is not None:
        _template(store, template, "CampaignSmsTemplate", "smsConfig.contentTemplate")
        out["contentTemplate"] = {"id": template}
    if message is None and template is None:
        raise bad_request(
            "smsConfig needs messageColumn or contentTemplate.", "smsConfig.messageColumn"
        )
    return out


def _email_config(raw: Any, cl: ContactList, store: Store) -> dict[str, Any]:
    cfg = req_object(raw, "emailConfig")
    columns = cfg.get("emailColumns")
    if not columns:
        raise bad_request("emailConfig.emailColumns is required.", "emailConfig.emailColumns")
    if not isinstance(columns, list) or not all(c in cl.email_column_names for c in columns):
        raise invalid_value(
            "emailConfig.emailColumns must name e-mail columns of the contact list.",
            "emailConfig.emailColumns",
        )
    sender = cfg.get("fromAddress")
    if not isinstance(sender, dict):
        raise bad_request("emailConfig.fromAddress is required.", "emailConfig.fromAddress")
    domain = ref_id(sender, "domain", "emailConfig.fromAddress.domain")
    if domain is None:
        raise bad_request(
            "emailConfig.fromAddress.domain is required.", "emailConfig.fromAddress.domain"
        )
    local = req_str(sender, "localPart", "emailConfig.fromAddress.localPart")
    from_address: dict[str, Any] = {"domain": {"id": domain}, "localPart": local}
    friendly = opt_str(sender, "friendlyName", "emailConfig.fromAddress.friendlyName")
    if friendly is not None:
        from_address["friendlyName"] = friendly
    out: dict[str, Any] = {"emailColumns": list(columns)}
    template = ref_id(cfg, "contentTemplate", "emailConfig.contentTemplate")
    if template is not None:
        _template(store, template, "CampaignEmailTemplate", "emailConfig.contentTemplate")
        out["contentTemplate"] = {"id": template}
    elif store.config.email_without_template == "refuse":
        raise bad_request(
            "emailConfig.contentTemplate is required: e-mail content comes only from a "
            "CampaignEmailTemplate response.",
            "emailConfig.contentTemplate",
        )
    out["fromAddress"] = from_address
    reply = cfg.get("replyToAddress")
    if reply is not None:
        reply = req_object(reply, "emailConfig.replyToAddress")
        reply_domain = ref_id(reply, "domain", "emailConfig.replyToAddress.domain")
        route = ref_id(reply, "route", "emailConfig.replyToAddress.route")
        if reply_domain is None or route is None:
            raise bad_request(
                "replyToAddress needs domain and route.", "emailConfig.replyToAddress"
            )
        out["replyToAddress"] = {"domain": {"id": reply_domain}, "route": {"id": route}}
    return out


def _sorts(raw: Any, cl: ContactList) -> list[dict[str, Any]]:
    if raw is None:
        return []
    items = req_list(raw, "contactSorts")
    if len(items) > MAX_CONTACT_SORTS:
        raise invalid_value(f"At most {MAX_CONTACT_SORTS} contactSorts.", "contactSorts")
    out = []
    for i, item in enumerate(items):
        sort = req_object(item, f"contactSorts[{i}]")
        name = req_str(sort, "fieldName", f"contactSorts[{i}].fieldName")
        if name not in cl.column_names:
            raise invalid_value(f"Sort field '{name}' is not a column.", "contactSorts")
        direction = opt_str(sort, "direction") or "ASC"
        if direction.upper() not in ("ASC", "DESC"):
            raise invalid_value("Sort direction must be ASC or DESC.", "contactSorts")
        out.append(
            {
                "fieldName": name,
                "direction": direction.upper(),
                "numeric": bool(sort.get("numeric")),
            }
        )
    return out


def _parse(body: dict[str, Any], store: Store, current: Campaign | None) -> dict[str, Any]:
    name = req_str(body, "name")
    if store.name_taken(store.campaigns, name, except_id=current.id if current else None):
        raise name_exists("campaign", name)
    list_id = ref_id(body, "contactList")
    if list_id is None:
        raise bad_request("The field 'contactList' is required.", "contactList")
    cl = store.contact_lists.get(list_id)
    if cl is None:
        raise invalid_value(f"Contact list {list_id} does not exist.", "contactList")
    mpm = body.get("messagesPerMinute")
    if mpm is None:
        raise bad_request("The field 'messagesPerMinute' is required.", "messagesPerMinute")
    if isinstance(mpm, bool) or not isinstance(mpm, int) or not 1 <= mpm <= MAX_MESSAGES_PER_MINUTE:
        raise invalid_value(
            f"messagesPerMinute must be an integer from 1 to {MAX_MESSAGES_PER_MINUTE}.",
            "messagesPerMinute",
        )
    time_set = ref_id(body, "callableTimeSet")
    if time_set is not None and time_set not in store.time_sets:
        raise invalid_value(f"Callable time set {time_set} does not exist.", "callableTimeSet")
    dnc_ids: list[str] = []
    for i, ref in enumerate(req_list(body.get("dncLists") or [], "dncLists")):
        dnc_id = ref_id({"ref": ref}, "ref", f"dncLists[{i}]")
        if dnc_id not in store.dnc_lists:
            raise invalid_value(f"DNC list {dnc_id} does not exist.", f"dncLists[{i}]")
        dnc_ids.append(str(dnc_id))
    rule_set_ids: list[str] = []
    for i, ref in enumerate(req_list(body.get("ruleSets") or [], "ruleSets")):
        rule_set_id = ref_id({"ref": ref}, "ref", f"ruleSets[{i}]")
        if store.config.rule_sets == "refuse":
            raise ApiError(
                400,
                "not.modelled",
                "Digital rule sets on campaigns are refused by this sandbox (rule_sets=refuse).",
                field="ruleSets",
            )
        if rule_set_id not in store.rule_sets:
            raise invalid_value(f"Digital rule set {rule_set_id} does not exist.", f"ruleSets[{i}]")
        rule_set_ids.append(str(rule_set_id))
    if body.get("whatsAppConfig") is not None:
        raise invalid_value("The sandbox does not run WhatsApp campaigns.", "whatsAppConfig")
    has_sms, has_email = body.get("smsConfig") is not None, body.get("emailConfig") is not None
    if has_sms == has_email:
        raise bad_request("Exactly one of smsConfig and emailConfig is required.", "smsConfig")
    status = body.get("campaignStatus")
    if status is None:
        status = current.status if current else "off"
    elif status not in ("on", "off") and not (current and status == current.status):
        raise invalid_value("campaignStatus can be set to 'on' or 'off'.", "campaignStatus")
    return {
        "name": name,
        "contact_list_id": cl.id,
        "messages_per_minute": mpm,
        "callable_time_set_id": time_set,
        "dnc_list_ids": dnc_ids,
        "rule_set_ids": rule_set_ids,
        "always_running": opt_bool(body, "alwaysRunning", False),
        "contact_sorts": _sorts(body.get("contactSorts"), cl),
        "sms_config": _sms_config(body["smsConfig"], cl, store) if has_sms else None,
        "email_config": _email_config(body["emailConfig"], cl, store) if has_email else None,
        "extra": {k: body[k] for k in ECHOED if body.get(k) is not None},
        "status": status,
    }


def _set_status(store: Store, campaign: Campaign, status: str) -> None:
    if status == "on":
        sender = campaign.sender_number
        rival = next(
            (
                c
                for c in store.campaigns.values()
                if c.id != campaign.id
                and c.status in RUNNING
                and sender
                and c.sender_number == sender
            ),
            None,
        )
        if rival is not None:
            raise ApiError(
                409,
                "sender.sms.phone.number.in.use",
                f"SMS number {sender} already serves running campaign '{rival.name}' "
                f"({rival.id}); an SMS number can send for one running campaign at a time.",
                field="campaignStatus",
            )
    if status != campaign.status:
        campaign.status = status


def _campaign_or_404(store: Store, campaign_id: str) -> Campaign:
    campaign = store.campaigns.get(campaign_id)
    if campaign is None:
        raise not_found("messaging campaign", campaign_id)
    return campaign


async def create_campaign(request: Request) -> Response:
    body = req_object(await read_json(request))
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        fields = _parse(body, store, None)
        status = fields.pop("status")
        campaign = Campaign(
            id=new_id(), date_created=store.now, date_modified=store.now, status="off", **fields
        )
        _set_status(store, campaign, status)
        store.campaigns[campaign.id] = campaign
        return ok(campaign_view(store, campaign))


async def list_campaigns(request: Request) -> Response:
    sandbox = sandbox_of(request)
    matches = name_filter(request)
    ids = set(query_list(request, "id"))
    list_id = request.query_params.get("contactListId")
    status = request.query_params.get("campaignStatus")
    sender = request.query_params.get("senderSmsPhoneNumber")
    with sandbox.lock:
        items = [
            c
            for c in sandbox.store.campaigns.values()
            if matches(c.name)
            and (not ids or c.id in ids)
            and (not list_id or c.contact_list_id == list_id)
            and (not status or c.status == status)
            and (not sender or c.sender_number == sender)
        ]
        return ok(page(request, items, lambda c: campaign_view(sandbox.store, c)))


async def get_campaign(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        campaign = _campaign_or_404(sandbox.store, request.path_params["campaignId"])
        return ok(campaign_view(sandbox.store, campaign))


async def put_campaign(request: Request) -> Response:
    body = req_object(await read_json(request))
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        campaign = _campaign_or_404(store, request.path_params["campaignId"])
        check_version(body, campaign.version, "messaging campaign")
        fields = _parse(body, store, campaign)
        status = fields.pop("status")
        previous = {k: getattr(campaign, k) for k in fields}
        for key, value in fields.items():
            setattr(campaign, key, value)
        try:
            _set_status(store, campaign, status)
        except ApiError:
            for key, value in previous.items():
                setattr(campaign, key, value)
            raise
        campaign.version += 1
        campaign.date_modified = store.now
        return ok(campaign_view(store, campaign))


async def delete_campaign(request: Request) -> Response:
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        campaign = _campaign_or_404(store, request.path_params["campaignId"])
        if campaign.status in RUNNING:
            raise ApiError(
                409, "resource.in.use", "A running campaign cannot be deleted; turn it off first."
            )
        view = campaign_view(store, campaign)
        del store.campaigns[campaign.id]
        return ok(view)


async def _switch(request: Request, status: str) -> Response:
    await read_json(request)
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        campaign = _campaign_or_404(store, request.path_params["campaignId"])
        if campaign.status != status:
            _set_status(store, campaign, status)
            campaign.version += 1
            campaign.date_modified = store.now
    return empty(204)


async def start_campaign(request: Request) -> Response:
    return await _switch(request, "on")


async def stop_campaign(request: Request) -> Response:
    return await _switch(request, "off")


async def get_progress(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        campaign = _campaign_or_404(sandbox.store, request.path_params["campaignId"])
        return ok(campaign_progress(sandbox.store, campaign))


async def get_diagnostics(request: Request) -> Response:
    sandbox = sandbox_of(request)
    with sandbox.lock:
        campaign = _campaign_or_404(sandbox.store, request.path_params["campaignId"])
        return ok(diagnostics_view(campaign))


async def reset_progress(request: Request) -> Response:
    """``DELETE .../progress``: reset the progress and recycle now (either ``recycle`` reading)."""
    sandbox = sandbox_of(request)
    store = sandbox.store
    with sandbox.lock:
        campaign = _campaign_or_404(store, request.path_params["campaignId"])
        campaign.recycle()
        cl = store.contact_lists.get(campaign.contact_list_id)
        for contact in cl.contacts.values() if cl else ():
            contact.hold_until_recycle = False
    return empty(204)


async def bulk_progress(request: Request) -> Response:
    ids = req_list(await read_json(request))
    if not all(isinstance(i, str) for i in ids):
        raise invalid_value("The body must be a list of campaign ids.")
    sandbox = sandbox_of(request)
    with sandbox.lock:
        store = sandbox.store
        return ok(
            [campaign_progress(store, store.campaigns[i]) for i in ids if i in store.campaigns]
        )


BASE = "/api/v2/outbound/messagingcampaigns"
routes = [
    Route(BASE, create_campaign, methods=["POST"]),
    Route(BASE, list_campaigns, methods=["GET"]),
    Route(BASE + "/progress", bulk_progress, methods=["POST"]),
    Route(BASE + "/{campaignId}", get_campaign, methods=["GET"]),
    Route(BASE + "/{campaignId}", put_campaign, methods=["PUT"]),
    Route(BASE + "/{campaignId}", delete_campaign, methods=["DELETE"]),
    Route(BASE + "/{campaignId}/start", start_campaign, methods=["POST"]),
    Route(BASE + "/{campaignId}/stop", stop_campaign, methods=["POST"]),
    Route(BASE + "/{campaignId}/progress", get_progress, methods=["GET"]),
    Route(BASE + "/{campaignId}/progress", reset_progress, methods=["DELETE"]),
    Route(BASE + "/{campaignId}/diagnostics", get_diagnostics, methods=["GET"]),
]
