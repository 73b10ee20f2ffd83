"""Wire fidelity: the official Genesys SDK (purecloudplatformclientv2 269.0.0) drives the sandbox.

Every JSON body the SDK receives is also walked strictly against the SDK's own models
(``tests.wire.Walker``, shared with the request evidence of ``test_wire_evidence``): a key
the model does not declare, a value of the wrong JSON type, or an enum value outside the
model's allowed values (exact case) fails the test.  The only tolerated extra key is the
agentless response's legacy ``textBody`` (SDK 150 had it; older contracts still read it).
The SDK's own requests, recorded by the sandbox, must also pass ``tests.wire.check_requests``
(the checker that judges the product's requests must not flag the official client).
Run with ``-s`` to print the summary of what was exercised.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from genesys_sandbox import SandboxConfig, create_app
from genesys_sandbox.testing import serve
from tests.wire import Walker, check_requests

SENDER = "+13175550100"
LEGACY_KEYS = frozenset({("SendAgentlessOutboundMessageResponse", "textBody")})


@dataclass
class Sdk:
    gc: Any
    api: Any
    url: str
    walker: Walker
    steps: list[str] = field(default_factory=list)

    def expect_error(self, status: int, code: str, call: Any, *args: Any, **kwargs: Any) -> None:
        with pytest.raises(self.gc.rest.ApiException) as caught:
            call(*args, **kwargs)
        assert caught.value.status == status
        body = json.loads(caught.value.body)
        assert body["code"] == code
        assert body["contextId"] == caught.value.headers["ININ-Correlation-Id"]
        self.walker.bodies["ErrorBody"] += 1
        self.walker.walk(body, "ErrorBody", "ErrorBody")


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sdk]:
    home = tmp_path_factory.mktemp("sdk-home")
    (home / ".genesyscloudpython").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        gc = importlib.import_module("PureCloudPlatformClientV2")
        gc.configuration.live_reload_config = False
        with serve(create_app(SandboxConfig(record_requests=True))) as url:
            gc.configuration.host = url
            api = gc.api_client.ApiClient(host=url)
            walker = Walker(gc.models, legacy_keys=LEGACY_KEYS)
            original = api.deserialize

            def strict(response: Any, response_type: str) -> Any:
                walker.bodies[response_type] += 1
                walker.walk(json.loads(response.data), response_type, response_type)
                return original(response, response_type)

            api.deserialize = strict
            yield Sdk(gc, api, url, walker)


def _model(gc: Any, model_name: str, **values: Any) -> Any:
    instance = getattr(gc, model_name)()
    for key, value in values.items():
        setattr(instance, key, value)
    return instance


def test_sdk_drives_every_endpoint_and_parses_every_answer(sdk: Sdk) -> None:
    gc, steps = sdk.gc, sdk.steps
    sdk.api.get_client_credentials_token("sandbox-client", "sandbox-secret")
    steps.append("POST /oauth/token (client credentials, Basic auth)")
    outbound, conversations = gc.OutboundApi(sdk.api), gc.ConversationsApi(sdk.api)
    one_pass = {"outside_window": "reschedule", "recycle": "never"}
    httpx.put(f"{sdk.url}/sandbox/config", json=one_pass).raise_for_status()

    phone = _model(gc, "ContactPhoneNumberColumn", column_name="Phone", type="cell")
    phone.callable_time_column = "TimeZone"
    contact_list = outbound.post_outbound_contactlists(
        _model(
            gc,
            "ContactList",
            name="sdk-list",
            column_names=["Phone", "Message", "TimeZone"],
            phone_columns=[phone],
        )
    )
    assert contact_list.version == 1
    assert contact_list.phone_columns[0].callable_time_column == "TimeZone"
    assert outbound.get_outbound_contactlist(contact_list.id).name == "sdk-list"
    listing = outbound.get_outbound_contactlists(name="sdk", page_size=100, page_number=1)
    assert [e.id for e in listing.entities] == [contact_list.id]
    steps.append("POST/GET /outbound/contactlists, GET /outbound/contactlists/{id}")

    contacts = [
        _model(
            gc,
            "WritableDialerContact",
            id=f"key-{zone.split('/')[-1].lower()}",
            contact_list_id=contact_list.id,
            data={"Phone": number, "Message": "Your invoice is due", "TimeZone": zone},
        )
        for number, zone in (
            ("+13175550001", "America/New_York"),
            ("+18085550002", "Pacific/Honolulu"),
            ("+13175550003", "America/Chicago"),
        )
    ]
    added = outbound.post_outbound_contactlist_contacts(contact_list.id, contacts, priority=True)
    assert [c.id for c in added] == ["key-new_york", "key-honolulu", "key-chicago"]
    assert added[0].contactable_status["SMS"].contactable is True
    found = outbound.post_outbound_contactlist_contacts_bulk(
        contact_list.id, ["key-new_york", "missing"]
    )
    assert [c.id for c in found] == ["key-new_york"]
    steps.append("POST /contactlists/{id}/contacts?priority=true, POST .../contacts/bulk")

    dnc = outbound.post_outbound_dnclists(
        _model(gc, "DncListCreate", name="sdk-dnc", dnc_source_type="rds", contact_method="Phone")
    )
    outbound.patch_outbound_dnclist_phonenumbers(
        dnc.id,
        _model(gc, "DncPatchPhoneNumbersRequest", action="Add", phone_numbers=["+13175550003"]),
    )
    outbound.post_outbound_dnclist_phonenumbers(dnc.id, ["+13175559999"])
    assert outbound.get_outbound_dnclist(dnc.id).size == 2
    steps.append("POST /dnclists, PATCH + POST /dnclists/{id}/phonenumbers, GET /dnclists/{id}")

    slots = [
        _model(gc, "CampaignTimeSlot", start_time="09:00:00", stop_time="17:00:00", day=d)
        for d in range(1, 8)
    ]
    times = outbound.post_outbound_callabletimesets(
        _model(
            gc,
            "CallableTimeSet",
            name="sdk-times",
            callable_times=[
                _model(gc, "CallableTime", time_zone_id=zone, time_slots=slots)
                for zone in ("America/New_York", "America/Chicago", "Pacific/Honolulu")
            ],
        )
    )
    steps.append("POST /callabletimesets")

    sms = _model(gc, "SmsConfig", phone_column="Phone", message_column="Message")
    sms.sender_sms_phone_number = _model(gc, "SmsPhoneNumberRef", phone_number=SENDER)
    campaign = outbound.post_outbound_messagingcampaigns(
        _model(
            gc,
            "MessagingCampaign",
            name="sdk-campaign",
            contact_list=_model(gc, "DomainEntityRef", id=contact_list.id),
            callable_time_set=_model(gc, "DomainEntityRef", id=times.id),
            dnc_lists=[_model(gc, "DomainEntityRef", id=dnc.id)],
            messages_per_minute=10,
            always_running=True,
            sms_config=sms,
        )
    )
    assert campaign.campaign_status == "off"
    assert campaign.dnc_lists[0].name == "sdk-dnc"
    fetched = outbound.get_outbound_messagingcampaign(campaign.id)
    fetched.campaign_status = "on"
    running = outbound.put_outbound_messagingcampaign(campaign.id, fetched)
    assert (running.campaign_status, running.version) == ("on", 2)
    outbound.post_outbound_messagingcampaign_stop(campaign.id)
    outbound.post_outbound_messagingcampaign_start(campaign.id)
    assert outbound.get_outbound_messagingcampaigns(name="sdk").total == 1
    steps.append("POST/GET/PUT /messagingcampaigns, POST .../stop and .../start (body null)")

    httpx.post(f"{sdk.url}/sandbox/run", json={"until": "2026-11-23T20:00:00Z"}).raise_for_status()
    progress = outbound.get_outbound_messagingcampaign_progress(campaign.id)
    assert progress.number_of_contacts_messaged == 2
    assert progress.number_of_contacts_skipped == {"dnc": 1}
    messaged = outbound.get_outbound_contactlist_contact(contact_list.id, "key-honolulu")
    evaluation = messaged.latest_sms_evaluations["Phone"]
    assert evaluation.message_type == "Sms"
    assert evaluation.timestamp.isoformat() == "2026-11-23T19:00:00+00:00"
    steps.append("GET /messagingcampaigns/{id}/progress, GET /contactlists/{id}/contacts/{cid}")

    request = _model(
        gc,
        "SendAgentlessOutboundMessageRequest",
        from_address=SENDER,
        to_address="+13175551234",
        to_address_messenger_type="sms",
        text_body="Payment received, thank you",
    )
    sent = conversations.post_conversations_messages_agentless(request)
    assert sdk.api.last_response.status == 202
    assert sent.message.status == "queued"
    httpx.post(f"{sdk.url}/sandbox/run", json={"minutes": 2}).raise_for_status()
    status = conversations.get_conversations_message_message(sent.conversation_id, sent.id)
    assert status.status in ("delivery-success", "delivery-failed", "failed")
    assert status.normalized_message.text == "Payment received, thank you"
    email = _model(
        gc,
        "AgentlessEmailSendRequestDto",
        sender_type="Outbound",
        from_address=_model(gc, "EmailAddress", email="billing@example.com"),
        to_addresses=[_model(gc, "EmailAddress", email="customer@example.com")],
        subject="Invoice",
        text_body="Your invoice is due",
    )
    assert conversations.post_conversations_emails_agentless(email).conversation_id
    steps.append("POST /conversations/messages/agentless (202), GET .../messages/{id}, e-mail")

    ref = outbound.post_outbound_contactlist_export(contact_list.id)
    assert ref.id == contact_list.id
    sdk.expect_error(
        404,
        "no.available.list.export.uri",
        outbound.get_outbound_contactlist_export,
        contact_list.id,
        download="false",
    )
    export = outbound.get_outbound_contactlist_export(contact_list.id, download="false")
    assert export.uri.startswith(f"{sdk.url}/api/v2/downloads/")
    download_id = export.uri.rsplit("/", 1)[1]
    pointer = sdk.gc.DownloadsApi(sdk.api).get_download(download_id, issue_redirect=False)
    signed = httpx.URL(pointer.url)
    assert (signed.host, signed.port) == ("localhost", httpx.URL(sdk.url).port)
    csv_text = httpx.get(signed).content  # a signed URL: no bearer token
    assert csv_text.startswith(b'\xef\xbb\xbf"inin-outbound-id"')
    steps.append(
        "POST /contactlists/{id}/export (body null), GET .../export polled, "
        "GET /downloads/{id}?issueRedirect=false (UrlResponse), signed URL without token"
    )

    diagnostics = outbound.get_outbound_messagingcampaign_diagnostics(campaign.id)
    assert diagnostics.time_zone_rescheduled_contacts_count == 2  # new_york, honolulu waited
    outbound.delete_outbound_messagingcampaign_progress(campaign.id)
    assert (
        outbound.get_outbound_messagingcampaign_diagnostics(
            campaign.id
        ).time_zone_rescheduled_contacts_count
        == 0
    )
    steps.append("GET /messagingcampaigns/{id}/diagnostics, DELETE .../progress (recycle)")

    rule = _model(
        gc,
        "DigitalRule",
        name="uncontactable-after-send",
        order=0,
        category="PostContact",
        conditions=[
            _model(
                gc,
                "DigitalCondition",
                inverted=False,
                last_result_overall_condition_settings=_model(
                    gc,
                    "LastResultOverallConditionSettings",
                    sms_wrapup_codes=["OUTBOUND-MESSAGE-SENT"],
                    email_wrapup_codes=["OUTBOUND-MESSAGE-SENT"],
                ),
            )
        ],
        actions=[
            _model(
                gc,
                "DigitalAction",
                mark_contact_uncontactable_action_settings=_model(
                    gc, "MarkContactUncontactableActionSettings", media_types=["SMS", "Email"]
                ),
            )
        ],
    )
    rule_set = outbound.post_outbound_digitalrulesets(
        _model(gc, "DigitalRuleSet", name="sdk-uncontactable-after-send", rules=[rule])
    )
    assert rule_set.rules[0].category == "PostContact"
    assert outbound.get_outbound_digitalruleset(rule_set.id).version == 1
    assert outbound.get_outbound_digitalrulesets(name="sdk").total == 1
    steps.append("POST/GET /outbound/digitalrulesets (PostContact, mark uncontactable)")

    responses = gc.ResponseManagementApi(sdk.api)
    library = responses.post_responsemanagement_libraries(_model(gc, "Library", name="sdk-lib"))
    template = responses.post_responsemanagement_responses(
        _model(
            gc,
            "Response",
            name="sdk-invoice",
            libraries=[_model(gc, "DomainEntityRef", id=library.id)],
            response_type="CampaignEmailTemplate",
            texts=[
                _model(
                    gc,
                    "ResponseText",
                    content="Invoice {{Ref}}",
                    content_type="text/plain",
                    type="subject",
                ),
                _model(
                    gc, "ResponseText", content="<p>Due</p>", content_type="text/html", type="body"
                ),
            ],
            substitutions=[_model(gc, "ResponseSubstitution", id="Ref", default_value="-")],
        )
    )
    assert template.texts[0].type == "subject"
    listed = responses.get_responsemanagement_responses(library.id)
    assert [r.id for r in listed.entities] == [template.id]
    assert responses.get_responsemanagement_library(library.id).name == "sdk-lib"
    steps.append("POST /responsemanagement/libraries, POST/GET /responsemanagement/responses")

    update = outbound.get_outbound_contactlist_contact(contact_list.id, "key-new_york")
    update.callable = False
    update.contactable_status = {
        "SMS": _model(gc, "ContactableStatus", contactable=False),
        "Email": _model(gc, "ContactableStatus", contactable=False),
    }
    changed = outbound.put_outbound_contactlist_contact(contact_list.id, "key-new_york", update)
    assert changed.callable is False
    assert changed.contactable_status["SMS"].contactable is False
    (read_back,) = outbound.post_outbound_contactlist_contacts_bulk(
        contact_list.id, ["key-new_york"]
    )
    assert (read_back.callable, read_back.contactable_status["SMS"].contactable) == (False, False)
    steps.append("PUT /contactlists/{id}/contacts/{cid} (callable, contactableStatus), bulk get")

    mail_dnc = outbound.post_outbound_dnclists(
        _model(
            gc, "DncListCreate", name="sdk-mail-dnc", dnc_source_type="rds", contact_method="Email"
        )
    )
    outbound.patch_outbound_dnclist_emailaddresses(
        mail_dnc.id,
        _model(gc, "DncPatchEmailsRequest", action="Add", email_addresses=["a@example.com"]),
    )
    assert outbound.get_outbound_dnclist(mail_dnc.id).size == 1
    times.callable_times[0].time_slots = slots[:5]
    assert outbound.put_outbound_callabletimeset(times.id, times).version == 2
    steps.append("PATCH /dnclists/{id}/emailaddresses, PUT /callabletimesets/{id}")

    outbound.delete_outbound_contactlist_contacts(contact_list.id, ["key-chicago", "missing"])
    assert outbound.get_outbound_contactlist(contact_list.id).size == 3  # in use: kept
    outbound.post_outbound_messagingcampaign_stop(campaign.id)
    outbound.delete_outbound_messagingcampaign(campaign.id)
    outbound.delete_outbound_contactlist_contacts(contact_list.id, ["key-chicago", "missing"])
    assert outbound.get_outbound_contactlist(contact_list.id).size == 2
    sdk.expect_error(404, "not.found", outbound.get_outbound_contactlist, "no-such-list")
    steps.append("DELETE /contactlists/{id}/contacts?contactIds=a,b (kept while in use)")
    outbound.delete_outbound_digitalruleset(rule_set.id)
    outbound.delete_outbound_contactlist(contact_list.id)
    sdk.expect_error(404, "not.found", outbound.get_outbound_contactlist, contact_list.id)
    steps.append("DELETE /digitalrulesets/{id}, DELETE /contactlists/{id}, ErrorBody on 404")

    walker = sdk.walker
    summary = [
        "SDK 269.0.0 against the sandbox:",
        *(f"  - {s}" for s in steps),
        f"  JSON bodies walked: {sum(walker.bodies.values())} "
        f"({', '.join(f'{k} x{v}' for k, v in sorted(walker.bodies.items()))})",
        f"  keys checked: {walker.keys_checked}, enum values checked: {walker.enums_checked}",
        f"  tolerated legacy keys seen: {sorted(walker.legacy_seen)}",
        f"  problems: {len(walker.problems)}",
    ]
    # the SDK's own requests pass the request checker that judges the product's (no false alarm)
    own = check_requests(httpx.get(f"{sdk.url}/sandbox/requests").json()["requests"])
    summary.append(
        f"  the SDK's own requests (tests.wire.check_requests): {own.requests} requests, "
        f"{len(own.operations)} operations, {own.bodies_walked} bodies, "
        f"{own.walker.required_checked} required fields, problems: {own.problems}"
    )
    print("\n" + "\n".join(summary))
    assert walker.problems == []
    assert own.problems == []
    assert own.requests >= 25
    assert walker.keys_checked > 200


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"id": "x", "colour": "red"}, "ContactList.colour: ContactList has no such key"),
        ({"retentionType": "Forever"}, "ContactList.retentionType: 'Forever' not in"),
        ({"retentionType": "never"}, "ContactList.retentionType: 'never' not in"),
        ({"version": "1"}, "ContactList.version: '1' is not a int"),
        ({"dateCreated": "yesterday"}, "ContactList.dateCreated: 'yesterday' is not a datetime"),
        ({"phoneColumns": [{"columnName": "P", "zone": "Z"}]}, "phoneColumns[0].zone"),
    ],
    ids=["unknown-key", "bad-enum", "enum-case", "wrong-type", "bad-datetime", "nested-key"],
)
def test_strict_walker_flags_what_the_sdk_would_swallow(
    sdk: Sdk, body: dict[str, Any], problem: str
) -> None:
    walker = Walker(sdk.gc.models)
    walker.walk(body, "ContactList", "ContactList")
    assert len(walker.problems) == 1
    assert problem in walker.problems[0]


def test_sdk_drives_architect_data_tables(sdk: Sdk) -> None:
    """Issue 12: the data-table endpoints the consent publisher uses, through ArchitectApi;
    every answer walked strictly against DataTable, JsonSchemaDocument and the listings."""
    gc = sdk.gc
    sdk.api.get_client_credentials_token("sandbox-client", "sandbox-secret")
    architect = gc.ArchitectApi(sdk.api)
    before = sum(sdk.walker.bodies.values())
    schema = _model(
        gc,
        "JsonSchemaDocument",
        schema="http://json-schema.org/draft-04/schema#",
        type="object",
        required=["key"],
        properties={
            "key": {"title": "key", "type": "string", "$id": "/properties/key"},
            "optedOut": {"title": "optedOut", "type": "boolean", "$id": "/properties/optedOut"},
        },
        additional_properties=False,
    )
    table = architect.post_flows_datatables(
        _model(gc, "DataTable", name="sdk-consent", description="sdk", schema=schema)
    )
    assert table.schema.properties["optedOut"]["type"] == "boolean"
    listing = architect.get_flows_datatables(name="sdk-consent", expand="schema")
    assert [t.id for t in listing.entities] == [table.id]
    assert listing.entities[0].schema.required == ["key"]
    assert architect.get_flows_datatable(table.id).schema is None  # only with expand=schema
    row = architect.post_flows_datatable_rows(table.id, {"key": "+13175550001", "optedOut": True})
    assert row == {"key": "+13175550001", "optedOut": True}
    updated = architect.put_flows_datatable_row(
        table.id, "+13175550001", body={"key": "+13175550001", "optedOut": False}
    )
    assert updated["optedOut"] is False
    full = architect.get_flows_datatable_rows(table.id, showbrief=False)
    assert full.entities == [{"key": "+13175550001", "optedOut": False}]
    brief = architect.get_flows_datatable_rows(table.id)
    assert brief.entities == [{"key": "+13175550001"}]
    assert architect.get_flows_datatable_row(table.id, "+13175550001")["optedOut"] is False
    sdk.expect_error(
        400,
        "invalid.value",
        architect.post_flows_datatable_rows,
        table.id,
        {"key": "+13175550002", "colour": "red"},
    )
    sdk.expect_error(
        400,
        "name.already.exists",
        architect.post_flows_datatables,
        _model(gc, "DataTable", name="SDK-consent", schema=schema),
    )
    architect.delete_flows_datatable_row(table.id, "+13175550001")
    architect.delete_flows_datatable(table.id)
    sdk.expect_error(404, "not.found", architect.get_flows_datatable, table.id)
    assert sum(sdk.walker.bodies.values()) - before >= 8
    assert sdk.walker.problems == []


def test_sdk_drives_the_agentless_lookup(sdk: Sdk) -> None:
    """Issue 12: the lookup that settles an unknown agentless send, through the SDK's
    AnalyticsApi (ConversationQuery -> AnalyticsConversationQueryResponse) and
    ConversationsApi (MessageConversation, MessageData); every answer walked strictly."""
    gc = sdk.gc
    sdk.api.get_client_credentials_token("sandbox-client", "sandbox-secret")
    conversations, analytics = gc.ConversationsApi(sdk.api), gc.AnalyticsApi(sdk.api)
    to = "+13175554321"
    sent = conversations.post_conversations_messages_agentless(
        _model(
            gc,
            "SendAgentlessOutboundMessageRequest",
            from_address=SENDER,
            to_address=to,
            to_address_messenger_type="sms",
            text_body="Lookup me",
        )
    )
    now = httpx.get(f"{sdk.url}/sandbox/clock").json()["now"]
    start, end = f"{now[:10]}T00:00:00.000Z", f"{now[:10]}T23:59:59.000Z"

    def predicate(dimension: str, value: str) -> Any:
        return _model(
            gc,
            "SegmentDetailQueryPredicate",
            type="dimension",
            dimension=dimension,
            operator="matches",
            value=value,
        )

    query = _model(
        gc,
        "ConversationQuery",
        interval=f"{start}/{end}",
        segment_filters=[
            _model(
                gc,
                "SegmentDetailQueryFilter",
                type="and",
                predicates=[predicate("mediaType", "message"), predicate("addressTo", to)],
            )
        ],
        paging=_model(gc, "PagingSpec", page_size=100, page_number=1),
    )
    found = analytics.post_analytics_conversations_details_query(query)
    assert found.total_hits == 1
    assert [c.conversation_id for c in found.conversations] == [sent.conversation_id]
    conversation = conversations.get_conversations_message(sent.conversation_id)
    ids = [m.message_id for p in conversation.participants for m in (p.messages or [])]
    assert ids == [sent.id]
    message = conversations.get_conversations_message_message(sent.conversation_id, sent.id)
    assert message.normalized_message.text == "Lookup me"
    sdk.steps.append(
        "POST /analytics/conversations/details/query, GET /conversations/messages/{id}"
    )
