"""Push: hand ready waves to Genesys exactly once, through long-lived messaging campaigns.

One campaign per route runs off one contact list at a time, both under deterministic names,
created on first use and reused after (rolled-over lists ``...-2``, ``...-3``). Routes: ``sms``
(``<prefix>-sms-<sender digits>``: one running campaign per sender number, so one SMS campaign
whose contacts carry the locally rendered body in ``Message``, whatever their kind) and
``email-<kind>`` for kind upcoming / due_today / overdue (``<prefix>-email-<kind>``): each
references its content template, the ``CampaignEmailTemplate`` response ``<prefix>-email-<kind>``
in the library ``<prefix>-templates``, made from ``templates/email_<kind>.txt`` (created, or
updated with its version when the file changed), and its contacts carry the typed variables
(CustomerName, Amount, DueDate, PaymentLink, InvoiceCount, CompanyName, SupportPhone) as
columns, formatted as render formats them, so Genesys renders the stored subject and body.

A callable time set with a slot per zone is the second guard that nothing leaves outside its
window; every campaign references the DNC list and the digital rule set
``<prefix>-uncontactable-after-send`` (after any wrap-up code, mark the contact uncontactable
for SMS and e-mail), so no recycle can message a contact twice. Each push run (every 15 minutes):

1. marks planned messages whose wave opens within the horizon ``ready`` (outbox), and expires
   planned or ready ones whose window is over (never added, nothing in Genesys to stop);
2. settles messages left ``pushing`` by a crash: a bulk lookup by contact id in the list
   recorded at ``pushing`` tells whether the add reached Genesys (``pushed``) or not
   (back to ``ready``);
3. re-checks payments and opt-outs since planning on a fresh extract and cancels those
   messages: ``ready`` ones at once; ``pushed`` ones only once Genesys confirms it cannot send
   them (made uncontactable, read back uncontactable and not attempted, then deleted); an
   attempt found on read-back is recorded as its outcome; an unverified one stays ``pushed``
   with state_reason ``cancel_pending`` and is retried next run. Global opt-outs' phones and
   e-mails go onto the Genesys DNC list;
4. per route, takes the ready messages whose slot has started (:func:`addable`: never before, so
   Genesys, which sends as soon as the callable window is open, cannot send early) and checks
   capacity: per channel, messages whose window ends by time T must fit in
   ``messagesPerMinute x minutes until T``; the rest is ``deferred`` with a reason;
5. rolls the list over when it would pass ``genesys.list_rollover_at`` (see :func:`_room`);
6. adds contacts wave by wave in batches of up to 1,000 with the message key as contact id,
   ``priority=true`` and ``doNotQueue=false`` (new contacts are queued under both readings),
   ``push_concurrency`` batches in flight under the shared rate limit (``pushing`` is
   committed for a group of batches before any of them is sent, ``pushed`` for every returned
   batch in one transaction after: see :func:`_push_batches`). An add whose outcome is
   unknown is never replayed: the batch is looked up and only the missing contacts are
   added. A batch Genesys refuses (4xx) is bisected so only the bad contacts are ``rejected``;
7. turns the campaign on.

Crash safety: the contact id is the message key, existing contacts are never re-added, and
every step is re-entrant from the outbox state alone.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    Future,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tasks.consent import channel_allowed, consent_state
from tasks.errors import GenesysError
from tasks.failpoints import failpoint
from tasks.genesys import GenesysClient, OutcomeUnknown, RequestRejected
from tasks.normalize import Normalized
from tasks.outbox import exclude_decisions, mark_ready, messages_in, transition
from tasks.outcomes import ALL_KNOWN_CODES, record_attempts, settle_uncontactable
from tasks.render import VARIABLES, TemplateSet, load_templates, response_texts
from tasks.settings import CadenceSettings, GenesysSettings, WindowSettings
from tasks.warehouse import read_frame

__all__ = [
    "EMAIL_KINDS",
    "PushResult",
    "RoutePlan",
    "Steps",
    "WavePush",
    "addable",
    "campaign_body",
    "cancel_stale",
    "capacity_plan",
    "contact_frame",
    "contact_rows",
    "merge",
    "names_for",
    "opted_out_addresses",
    "outstanding_routes",
    "plan_route",
    "push_wave",
    "push_waves_to_genesys",
    "ready_and_settle",
    "recheck",
    "response_body",
    "route_of",
    "start_campaign",
]

log = logging.getLogger(__name__)

SMS_COLUMNS = ("MessageKey", "Phone", "Message", "TimeZone", "WaveId", "LocalSendDate")
EMAIL_COLUMNS = ("MessageKey", "Email", "TimeZone", "WaveId", "LocalSendDate", *VARIABLES)
"""E-mail contacts carry the typed template variables, never a rendered subject or body:
Genesys renders the campaign's content template with them."""
EMAIL_KINDS = ("upcoming", "due_today", "overdue")


@dataclass
class PushResult:
    ready_waves: int = 0
    settled: dict[str, int] = field(default_factory=dict)
    cancelled: dict[str, int] = field(default_factory=dict)
    deferred: int = 0
    pushed: int = 0
    rejected: int = 0
    batches: int = 0
    dnc_added: int = 0
    waiting_for_list: int = 0
    cancel_pending: int = 0
    no_template_values: int = 0
    campaigns: dict[str, str] = field(default_factory=dict)
    contact_lists: dict[str, str] = field(default_factory=dict)


def names_for(route: str, genesys: GenesysSettings) -> dict[str, str]:
    """Deterministic Genesys object names for a route: ``sms`` (one campaign per sender
    number: kinds differ per contact, in the message column) or ``email-<kind>`` (one campaign,
    list and content template per e-mail template kind). Plain ``email`` is the name of the
    single e-mail campaign from before content templates."""
    channel = route.split("-", 1)[0]
    if channel == "sms":
        suffix = "sms-" + "".join(c for c in genesys.sms_sender if c.isdigit())
    else:
        suffix = route
    base = f"{genesys.name_prefix}-{suffix}"
    names = {
        "contact_list": base,
        "campaign": base,
        "time_set": f"{genesys.name_prefix}-send-window",
        "rule_set": f"{genesys.name_prefix}-uncontactable-after-send",
        "library": f"{genesys.name_prefix}-templates",
    }
    if channel == "email":
        names["response"] = base
    return names


def route_of() -> pl.Expr:
    """The route of an outbox row: ``sms``, else ``email-<kind>`` from its template name."""
    return (
        pl.when(pl.col("channel") == "sms")
        .then(pl.lit("sms"))
        .otherwise(pl.lit("email-") + pl.col("template").str.strip_prefix("email_"))
        .alias("route")
    )


def response_body(
    kind: str, templates: TemplateSet, genesys: GenesysSettings, library_id: str
) -> dict[str, Any]:
    """The ``CampaignEmailTemplate`` response of one e-mail kind: the template file's subject
    and body with the same ``{{Name}}`` placeholders, a substitution per typed variable."""
    template = templates.templates[f"email_{kind}"]
    return {
        "name": names_for(f"email-{kind}", genesys)["response"],
        "libraries": [{"id": library_id}],
        "responseType": "CampaignEmailTemplate",
        "interactionType": "email",
        "texts": response_texts(template),
        "substitutions": [
            {"id": name, "description": f"{name} ({vtype.value}), a contact-list column"}
            for name, vtype in VARIABLES.items()
        ],
    }


def list_generation(name: str, base: str) -> int:
    """The rollover generation of a contact list name: ``base`` is 1, ``base-N`` is N; any
    other name (a list from before rollovers) counts as 1."""
    if name.startswith(base + "-") and name[len(base) + 1 :].isdigit():
        return int(name[len(base) + 1 :])
    return 1


def list_name(base: str, generation: int) -> str:
    """Deterministic contact list name of a rollover generation (``base``, ``base-2``, ...)."""
    return base if generation <= 1 else f"{base}-{generation}"


def rule_set_body(genesys: GenesysSettings) -> dict[str, Any]:
    """The digital rule set every campaign references: after a contact's message got any
    wrap-up code (sent, failed or anything else the pipeline knows), mark the contact
    uncontactable for SMS and e-mail, so a recycle can never message it again."""
    return {
        "name": names_for("sms", genesys)["rule_set"],
        "rules": [
            {
                "name": "uncontactable-after-any-result",
                "order": 0,
                "category": "PostContact",
                "conditions": [
                    {
                        "lastResultOverallConditionSettings": {
                            "smsWrapupCodes": list(ALL_KNOWN_CODES),
                            "emailWrapupCodes": list(ALL_KNOWN_CODES),
                        }
                    }
                ],
                "actions": [
                    {"markContactUncontactableActionSettings": {"mediaTypes": ["SMS", "Email"]}}
                ],
            }
        ],
    }


def recheck(
    messages: pl.DataFrame,
    fresh: Normalized,
    cadence: CadenceSettings,
    now: datetime | None = None,
) -> pl.DataFrame:
    """Messages that must not go out any more: (message_key, detail) with the reason.

    ``paid_since_planning``: one of its invoices is no longer payable, has no balance, has a
    ``paid_at`` at or before ``now`` (naive UTC) whatever its status says, or vanished (for
    example quarantined as a conflict since); ``opted_out_since_planning``: the customer may no
    longer be messaged on the message's channel (an opt-out, or a consent row that can no
    longer be read); ``address_changed_since_planning``: the message's ``to_address`` (when
    ``messages`` has one) is no longer the customer's phone / e-mail (a number replaced in the
    CRM may already belong to someone else), or the customer is gone.
    """
    if messages.height == 0:
        return pl.DataFrame(schema={"message_key": pl.String, "detail": pl.String})
    paid_at = pl.col("paid_at") if "paid_at" in fresh.invoices.columns else pl.lit(None)
    paid = (paid_at <= now).fill_null(False) if now is not None else pl.lit(False)
    payable = fresh.invoices.filter(
        pl.col("status").is_in(cadence.payable_statuses) & (pl.col("amount_due_minor") > 0) & ~paid
    ).select("invoice_id", pl.lit(True).alias("_payable"))
    invoices = (
        messages.select("message_key", pl.col("invoice_ids").str.split(",").alias("invoice_id"))
        .explode("invoice_id", empty_as_null=True)
        .join(payable, on="invoice_id", how="left")
        .group_by("message_key")
        .agg(pl.col("_payable").fill_null(False).all().alias("_still_payable"))
    )
    consent = consent_state(fresh.consent_for_planning, unclear=fresh.consent_unclear)
    allowed = consent.select(
        "customer_id",
        channel_allowed("sms", email_requires_opt_in=cadence.email_requires_opt_in).alias("sms"),
        channel_allowed("email", email_requires_opt_in=cadence.email_requires_opt_in).alias(
            "email"
        ),
    )
    moved: pl.Expr = pl.lit(False)
    if "to_address" in messages.columns:
        current = fresh.customers.select(
            "customer_id", pl.col("phone_e164").alias("_phone"), pl.col("email").alias("_email")
        )
        messages = messages.join(current, on="customer_id", how="left")
        now_at = pl.when(pl.col("channel") == "sms").then("_phone").otherwise("_email")
        moved = (now_at != pl.col("to_address")).fill_null(True)
    frame = (
        messages.select("message_key", "customer_id", "channel", moved.alias("_moved"))
        .join(invoices, on="message_key", how="left")
        .join(allowed, on="customer_id", how="left")
        .with_columns(
            pl.when(pl.col("channel") == "sms")
            .then(pl.col("sms"))
            .otherwise(pl.col("email").fill_null(not cadence.email_requires_opt_in))
            .fill_null(False)
            .alias("_allowed")
        )
    )
    return frame.filter(~pl.col("_still_payable") | ~pl.col("_allowed") | pl.col("_moved")).select(
        "message_key",
        pl.when(~pl.col("_still_payable"))
        .then(pl.lit("paid_since_planning"))
        .when(~pl.col("_allowed"))
        .then(pl.lit("opted_out_since_planning"))
        .otherwise(pl.lit("address_changed_since_planning"))
        .alias("detail"),
    )


def opted_out_addresses(fresh: Normalized) -> pl.DataFrame:
    """(address, kind) of every customer whose consent is a global opt-out: their phone numbers
    and e-mail addresses belong on the Genesys DNC list, a guard that holds inside Genesys even
    between two pushes."""
    consent = consent_state(fresh.consent_for_planning).filter(pl.col("global_opt_out"))
    customers = fresh.customers.join(consent.select("customer_id"), on="customer_id")
    return (
        pl.concat(
            [
                customers.select(
                    pl.col("phone_e164").alias("address"), pl.lit("phone").alias("kind")
                ),
                customers.select(pl.col("email").alias("address"), pl.lit("email").alias("kind")),
            ]
        )
        .drop_nulls("address")
        .unique("address")
        .sort("kind", "address")
    )


def _sync_dnc(
    engine: Engine,
    client: GenesysClient,
    genesys: GenesysSettings,
    fresh: Normalized,
    *,
    run_id: str,
    now: datetime,
) -> tuple[str, int]:
    """Add opt-outs not yet on the Genesys DNC list; returns (DNC list id, entries added).

    Genesys first, warehouse after: a crash in between only repeats an Add, which is a set
    union on the Genesys side.
    """
    name = f"{genesys.name_prefix}-opt-outs"
    dnc = client.find_dnc_list(name) or client.create_dnc_list(name, "Any")
    with engine.begin() as conn:
        known = read_frame(conn, "select address from dnc_entries", schema={"address": pl.String()})
    new = opted_out_addresses(fresh).join(known, on="address", how="anti")
    if new.height:
        client.add_dnc_phone_numbers(
            dnc["id"], new.filter(pl.col("kind") == "phone")["address"].to_list()
        )
        client.add_dnc_email_addresses(
            dnc["id"], new.filter(pl.col("kind") == "email")["address"].to_list()
        )
        with engine.begin() as conn:
            # An overlapping push may have recorded some of them since we read: keep its row.
            conn.execute(
                sa.text(
                    "insert into dnc_entries (address, kind, dnc_list_id, added_at_utc, run_id)"
                    " values (:address, :kind, :d, :now, :r) on conflict (address) do nothing"
                ),
                [
                    {"address": a, "kind": k, "d": dnc["id"], "now": now, "r": run_id}
                    for a, k in new.select("address", "kind").iter_rows()
                ],
            )
    return dnc["id"], new.height


def addable(messages: pl.DataFrame, *, now: datetime) -> pl.DataFrame:
    """The messages a push at ``now`` may add to Genesys: their slot (wave) has started and
    their window has not ended. Never earlier: Genesys would send a contact as soon as its
    callable window is open, which may be before its slot."""
    return messages.filter(
        (pl.col("wave_start_utc") <= pl.lit(now)) & (pl.col("window_end_utc") > pl.lit(now))
    )


def capacity_plan(
    outstanding: pl.DataFrame, *, now: datetime, messages_per_minute: int
) -> pl.DataFrame:
    """Which outstanding messages of one campaign can still go out before their window ends.

    Earliest-deadline-first: sorted by window end, the k-th message fits if k <= rate x
    minutes from ``now`` (or its wave start, if later, for the first message of a window)
    to its window end. Returns (message_key, fits).
    """
    if outstanding.height == 0:
        return pl.DataFrame(schema={"message_key": pl.String, "fits": pl.Boolean})
    ordered = outstanding.sort("window_end_utc", "wave_start_utc", "send_at_utc", "message_key")
    minutes = (pl.col("window_end_utc") - pl.lit(now)).dt.total_seconds().clip(lower_bound=0) / 60.0
    return ordered.select(
        "message_key",
        ((pl.int_range(1, pl.len() + 1)) <= (minutes * messages_per_minute).floor()).alias("fits"),
    )


def contact_rows(messages: pl.DataFrame, channel: str) -> list[dict[str, Any]]:
    """:func:`contact_frame` as a list of ``{"id", "data"}`` dicts."""
    return contact_frame(messages, channel).to_dicts()


def contact_frame(messages: pl.DataFrame, channel: str) -> pl.DataFrame:
    """Genesys contacts (id = message key) for outbox rows of one channel (or route): a
    frame of ``id`` and a ``data`` struct, which the client encodes column-wise.

    SMS: the locally rendered body in ``Message``. E-mail: the typed variables' values as
    rendered (``template_values``) in columns named after them, for the content template."""
    zone = pl.col("time_zone").str.split("|").list.first()
    if channel == "sms":
        data = [
            pl.col("message_key").alias("MessageKey"),
            pl.col("to_address").alias("Phone"),
            pl.col("body").alias("Message"),
        ]
    else:
        values = (
            pl.col("template_values")
            .cast(pl.String)
            .str.json_decode(pl.Struct({name: pl.String for name in VARIABLES}))
        )
        data = [
            pl.col("message_key").alias("MessageKey"),
            pl.col("to_address").alias("Email"),
        ]
        data += [values.struct.field(name).fill_null("").alias(name) for name in VARIABLES]
    data += [
        zone.alias("TimeZone"),
        pl.col("wave_id").alias("WaveId"),
        pl.col("local_send_date").cast(pl.String).alias("LocalSendDate"),
    ]
    return messages.select(pl.col("message_key").alias("id"), pl.struct(data).alias("data"))


def campaign_body(
    channel: str,
    genesys: GenesysSettings,
    *,
    name: str,
    contact_list_id: str,
    time_set_id: str,
    dnc_list_ids: Sequence[str] = (),
    rule_set_ids: Sequence[str] = (),
    content_template_id: str | None = None,
) -> dict[str, Any]:
    """A messaging campaign that always runs off one contact list, inside the time set, with
    the DNC lists and the mark-uncontactable rule set. An e-mail campaign's content is its
    ``content_template_id`` response (Genesys has no subject or body column)."""
    body: dict[str, Any] = {
        "name": name,
        "contactList": {"id": contact_list_id},
        "callableTimeSet": {"id": time_set_id},
        "messagesPerMinute": genesys.messages_per_minute,
        "alwaysRunning": True,
        "campaignStatus": "off",
        "contactSorts": [{"fieldName": "LocalSendDate", "direction": "ASC"}],
        "dncLists": [{"id": i} for i in dnc_list_ids],
        "ruleSets": [{"id": i} for i in rule_set_ids],
    }
    if channel.startswith("sms"):
        body["smsConfig"] = {
            "phoneColumn": "Phone",
            "messageColumn": "Message",
            "senderSmsPhoneNumber": {"phoneNumber": genesys.sms_sender},
        }
    else:
        body["emailConfig"] = {
            "emailColumns": ["Email"],
            "fromAddress": {
                "domain": {"id": genesys.email_from_domain_id},
                "localPart": genesys.email_from_local_part,
                "friendlyName": genesys.email_friendly_name,
            },
        }
        if content_template_id is not None:
            body["emailConfig"]["contentTemplate"] = {"id": content_template_id}
    return body


def _create_list(client: GenesysClient, channel: str, name: str) -> dict[str, Any]:
    found = client.find_contact_list(name)
    if found is not None:
        return found
    channel = channel.split("-", 1)[0]
    columns = SMS_COLUMNS if channel == "sms" else EMAIL_COLUMNS
    return client.create_contact_list(
        name,
        columns,
        phone_columns=[("Phone", "TimeZone")] if channel == "sms" else (),
        email_columns=[("Email", "TimeZone")] if channel == "email" else (),
    )


def _ensure_template(
    client: GenesysClient, route: str, genesys: GenesysSettings, templates: TemplateSet
) -> str:
    """The id of an e-mail route's content template: the library ``<prefix>-templates`` and
    the response ``<prefix>-email-<kind>``, created or updated when the template changed."""
    names = names_for(route, genesys)
    library = client.ensure_library(names["library"])
    kind = route.split("-", 1)[1]
    return client.ensure_response(response_body(kind, templates, genesys, library["id"]))["id"]


def _ensure_objects(
    client: GenesysClient,
    route: str,
    genesys: GenesysSettings,
    window: WindowSettings,
    zones: Sequence[str],
    dnc_list_ids: Sequence[str] = (),
    templates: TemplateSet | None = None,
) -> tuple[str, str]:
    """(contact list id, campaign id) of a route: the campaign's current list, or a new one.
    An e-mail route's campaign references its content template."""
    names = names_for(route, genesys)
    rule_set = client.ensure_digital_rule_set(rule_set_body(genesys))
    template_id = (
        _ensure_template(client, route, genesys, templates or load_templates())
        if route.startswith("email")
        else None
    )
    failpoint("push.before_contact_list")
    campaign = client.find_campaign(names["campaign"])
    current = (campaign or {}).get("contactList") or {}
    found = (
        {"id": current["id"]}
        if current.get("id")
        else _create_list(client, route, names["contact_list"])
    )
    failpoint("push.after_contact_list")
    time_set = client.ensure_callable_time_set(
        names["time_set"], zones, f"{window.start:%H:%M:%S}", f"{window.end:%H:%M:%S}"
    )
    failpoint("push.before_campaign_create")
    if campaign is None:
        campaign = client.create_messaging_campaign(
            campaign_body(
                route,
                genesys,
                name=names["campaign"],
                contact_list_id=found["id"],
                time_set_id=time_set["id"],
                dnc_list_ids=dnc_list_ids,
                rule_set_ids=[rule_set["id"]],
                content_template_id=template_id,
            )
        )
    else:
        if dnc_list_ids:
            client.ensure_campaign_dnc_lists(campaign["id"], dnc_list_ids)
        client.ensure_campaign_rule_sets(campaign["id"], [rule_set["id"]])
        if template_id is not None:
            client.ensure_campaign_content_template(campaign["id"], template_id)
    failpoint("push.after_campaign_create")
    return found["id"], campaign["id"]


def _busy(engine: Engine, list_id: str) -> int:
    """Messages still pushing or pushed into a contact list (not finished)."""
    with engine.begin() as conn:
        return int(
            read_frame(
                conn,
                "select count(*) as n from messages where genesys_contact_list_id = :l"
                " and state in ('pushing', 'pushed')",
                {"l": list_id},
                schema={"n": pl.Int64()},
            )["n"][0]
        )


def _delete_finished_list(engine: Engine, client: GenesysClient, list_id: str) -> None:
    """Delete a rolled-over list once no message is pushed into it any more."""
    if _busy(engine, list_id):
        return
    try:
        client.delete_contact_list(list_id)
    except GenesysError as exc:
        log.warning("old contact list %s not deleted yet: %s", list_id, exc)


def _room(
    engine: Engine,
    client: GenesysClient,
    channel: str,
    genesys: GenesysSettings,
    *,
    list_id: str,
    campaign_id: str,
    incoming: int,
) -> tuple[str, int]:
    """(list id to add to, how many contacts it may take now), rolling the list over.

    A list takes contacts until it holds ``genesys.list_rollover_at``. Then the next contacts
    go to the next generation (``<name>-2``, ``-3``, ...), but only once no message is still
    pushed (or pushing) into the current list: switching the campaign away from a list
    strands its unsent contacts. The campaign is switched by read-modify-write, and the old
    list, now holding only finished (uncontactable) contacts, is deleted.
    """
    limit = genesys.list_rollover_at
    base = names_for(channel, genesys)["contact_list"]
    info = client.get_contact_list(list_id)
    size = int(info.get("size") or 0)
    generation = list_generation(str(info.get("name") or base), base)
    if generation > 1:  # a previous generation left behind by a crash after the switch
        previous = client.find_contact_list(list_name(base, generation - 1))
        if previous is not None and previous["id"] != list_id:
            _delete_finished_list(engine, client, previous["id"])
    if size + incoming <= limit:
        return list_id, incoming
    if _busy(engine, list_id) or size == 0:
        return list_id, max(0, limit - size)
    new = _create_list(client, channel, list_name(base, generation + 1))
    failpoint("push.after_rollover_list")
    client.switch_campaign_contact_list(campaign_id, new["id"])
    failpoint("push.after_rollover_switch")
    _delete_finished_list(engine, client, list_id)
    new_size = int(client.get_contact_list(new["id"]).get("size") or 0)
    return new["id"], max(0, min(incoming, limit - new_size))


def _mark_pushing(
    engine: Engine,
    batches: Sequence[pl.DataFrame],
    *,
    contact_list_id: str,
    run_id: str,
    now: datetime,
) -> None:
    """Record the intent for a group of batches in one transaction: their messages move
    ``ready`` -> ``pushing`` (with the list they go to) before any of them is sent."""
    keys = pl.concat([b.select("message_key") for b in batches]).with_columns(
        pl.lit(contact_list_id).alias("genesys_contact_list_id")
    )
    with engine.begin() as conn:
        transition(
            conn,
            keys,
            from_states=("ready",),
            to_state="pushing",
            run_id=run_id,
            now=now,
            detail="adding to the Genesys contact list",
            all_or_nothing=True,  # the ready messages this push planned to add
        )


def _record_results(
    engine: Engine,
    outcomes: Sequence[tuple[list[str], list[tuple[str, str]]]],
    *,
    contact_list_id: str,
    campaign_id: str,
    run_id: str,
    now: datetime,
    result: PushResult,
) -> None:
    """Record the outcome of one or more sent batches in one transaction: accepted contacts
    ``pushing`` -> ``pushed``, refused ones ``pushing`` -> ``rejected`` (code kept)."""
    accepted = [key for done, _ in outcomes for key in done]
    refused = [pair for _, bad in outcomes for pair in bad]
    with engine.begin() as conn:
        if accepted:
            transition(
                conn,
                pl.DataFrame(
                    {"message_key": accepted}, schema={"message_key": pl.String}
                ).with_columns(
                    pl.lit(contact_list_id).alias("genesys_contact_list_id"),
                    pl.lit(campaign_id).alias("genesys_campaign_id"),
                ),
                from_states=("pushing",),
                to_state="pushed",
                run_id=run_id,
                now=now,
                detail="in the Genesys contact list",
                all_or_nothing=True,  # its own intents: a conflict rolls back, settled later
            )
        if refused:
            frame = pl.DataFrame(
                refused, schema=["message_key", "genesys_error_code"], orient="row"
            )
            transition(
                conn,
                frame.with_columns(
                    (pl.lit("refused by Genesys: ") + pl.col("genesys_error_code")).alias("detail")
                ),
                from_states=("pushing",),
                to_state="rejected",
                run_id=run_id,
                now=now,
                all_or_nothing=True,
            )
            exclude_decisions(
                conn, frame, reason="genesys_rejected", detail="Genesys refused the contact"
            )
    result.pushed += len(accepted)
    result.rejected += len(refused)
    result.batches += len(outcomes)


def _send_batch(
    client: GenesysClient,
    contact_list_id: str,
    batch: pl.DataFrame,
    channel: str,
    halt: threading.Event,
) -> tuple[list[str], list[tuple[str, str]]] | None:
    """The call of one batch (its intent is already committed): HTTP only, no warehouse.
    None, and nothing sent, when the push was halted before the call started."""
    if halt.is_set():
        return None
    outcome = _add_settled(client, contact_list_id, batch, channel)
    failpoint("push.after_batch_sent")
    return outcome


RECORD_EVERY_SECONDS = 3.0
"""How long returned batches may wait to be recorded ``pushed`` while more calls are in
flight: every recording transaction costs a scan of the outbox, so returned batches are
recorded together (at least ``4 x concurrency`` of them, or after this long)."""


def _push_batches(
    engine: Engine,
    client: GenesysClient,
    batches: Sequence[tuple[str, pl.DataFrame]],
    channel: str,
    *,
    contact_list_id: str,
    campaign_id: str,
    run_id: str,
    now: datetime,
    result: PushResult,
    concurrency: int,
    progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Push (wave id, batch) pairs, in order, ``concurrency`` calls in flight; returns how
    many messages were handled. Once ``stop`` is set (another wave failed, the run was
    interrupted) it stops as on an error of its own, without raising: no new group, the
    calls in flight finished and recorded, queued batches never started back to ``ready``.

    The state changes are grouped, so the warehouse is never what the calls wait for and
    costs a few transactions per thousand contacts, not one per batch: the intent
    (``pushing``) of a group of up to ``8 x concurrency`` batches is committed in one
    transaction before any of them is queued (the next group once fewer than
    ``2 x concurrency`` are left),
    and returned batches are recorded in one transaction once ``4 x concurrency`` of them
    have returned or the oldest has waited :data:`RECORD_EVERY_SECONDS`, while the next calls
    are in flight; once nothing is left to queue, the remaining calls are recorded together
    when they have all returned (or one failed). Only the calling thread touches the
    warehouse; the workers only make the calls.

    Exactly once: a batch is sent only after its intent is committed; a crash between intent
    and result leaves its messages ``pushing``, which :func:`_settle_pushing` resolves by
    looking them up in Genesys. The failpoints keep their meaning per batch:
    ``push.after_mark_pushing`` once per batch after its group's intent is committed,
    ``push.after_batch_sent`` in the worker after its call, ``push.after_batch_recorded``
    once per batch after the commit that recorded it, ``push.between_waves`` when a wave's
    last batch is recorded. On an error, no new group is started, the calls in flight are
    finished and recorded, the queued batches that never started go back to ``ready`` (never
    sent), and the first error is raised.
    """
    todo = deque(batches)
    left_in_wave: dict[str, int] = {}
    for wave_id, _batch in batches:
        left_in_wave[wave_id] = left_in_wave.get(wave_id, 0) + 1
    low, high = 2 * concurrency, 8 * concurrency  # batches queued or in flight
    queued: dict[
        Future[tuple[list[str], list[tuple[str, str]]] | None], tuple[str, pl.DataFrame]
    ] = {}
    halt = stop if stop is not None else threading.Event()  # set on an error too
    returned: list[tuple[tuple[list[str], list[tuple[str, str]]], str, pl.DataFrame]] = []
    oldest = 0.0  # monotonic time the oldest unrecorded batch returned
    handled = 0
    error: BaseException | None = None
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        try:
            while queued or returned or (todo and not halt.is_set()):
                if todo and not halt.is_set() and len(queued) < low:
                    group = [todo.popleft() for _ in range(min(len(todo), high - len(queued)))]
                    _mark_pushing(
                        engine,
                        [batch for _, batch in group],
                        contact_list_id=contact_list_id,
                        run_id=run_id,
                        now=now,
                    )
                    for wave_id, batch in group:
                        failpoint("push.after_mark_pushing")
                        future = pool.submit(
                            _send_batch, client, contact_list_id, batch, channel, halt
                        )
                        queued[future] = (wave_id, batch)
                more = bool(todo) and not halt.is_set()
                if queued:
                    # with nothing left to queue, recording early starts no call: wait for
                    # the rest (or the first error) and record them in one transaction
                    timeout = (
                        max(0.0, oldest + RECORD_EVERY_SECONDS - time.monotonic())
                        if returned and more
                        else None
                    )
                    finished, _ = wait(
                        queued,
                        timeout=timeout,
                        return_when=FIRST_COMPLETED if more else FIRST_EXCEPTION,
                    )
                else:
                    finished = set()
                never_sent: list[pl.DataFrame] = []
                for future in finished:
                    wave_id, batch = queued.pop(future)
                    if future.cancelled():
                        continue
                    exc = future.exception()
                    if exc is not None:
                        error = error or exc
                        halt.set()
                        continue
                    outcome = future.result()
                    if outcome is None:  # halted before its call: nothing was sent
                        never_sent.append(batch)
                        continue
                    if not returned:
                        oldest = time.monotonic()
                    returned.append((outcome, wave_id, batch))
                if halt.is_set():
                    for future in [f for f in queued if f.cancel()]:
                        never_sent.append(queued.pop(future)[1])
                if never_sent:
                    with engine.begin() as conn:
                        transition(
                            conn,
                            pl.concat([batch.select("message_key") for batch in never_sent]),
                            from_states=("pushing",),
                            to_state="ready",
                            run_id=run_id,
                            now=now,
                            detail="not sent: the push stopped",
                            all_or_nothing=True,  # its own intents, never sent
                        )
                due = (
                    not queued
                    or not more
                    or len(returned) >= 4 * concurrency
                    or time.monotonic() - oldest >= RECORD_EVERY_SECONDS
                )
                if not returned or not due:
                    continue
                recorded, returned = returned, []
                _record_results(
                    engine,
                    [outcome for outcome, _, _ in recorded],
                    contact_list_id=contact_list_id,
                    campaign_id=campaign_id,
                    run_id=run_id,
                    now=now,
                    result=result,
                )
                for _, wave_id, batch in recorded:
                    failpoint("push.after_batch_recorded")
                    handled += batch.height
                    if progress:
                        progress(batch.height)
                    left_in_wave[wave_id] -= 1
                    if left_in_wave[wave_id] == 0:
                        failpoint("push.between_waves")
        except BaseException:
            # the warehouse failed (or an interrupt): nothing queued is started any more; its
            # messages stay pushing and are settled by lookup on the next run
            for future in queued:
                future.cancel()
            raise
    if error is not None:
        raise error
    return handled


def _add_settled(
    client: GenesysClient, contact_list_id: str, batch: pl.DataFrame, channel: str
) -> tuple[list[str], list[tuple[str, str]]]:
    """Add a batch; an add whose outcome is unknown (connection lost) is never replayed
    blindly: the batch is looked up and only the contacts that are missing are added."""
    try:
        return _add_bisecting(client, contact_list_id, batch, channel)
    except OutcomeUnknown:
        present = {
            c["id"] for c in client.get_contacts(contact_list_id, batch["message_key"].to_list())
        }
        missing = batch.filter(~pl.col("message_key").is_in(list(present)))
        accepted, refused = (
            _add_settled(client, contact_list_id, missing, channel) if missing.height else ([], [])
        )
        return [k for k in batch["message_key"] if k in present] + accepted, refused


def _add_bisecting(
    client: GenesysClient, contact_list_id: str, batch: pl.DataFrame, channel: str
) -> tuple[list[str], list[tuple[str, str]]]:
    """Add a batch; on a permanent refusal split it to isolate the refused contacts."""
    try:
        client.add_contacts(
            contact_list_id, contact_frame(batch, channel), priority=True, read_back=False
        )
        return batch["message_key"].to_list(), []
    except RequestRejected as exc:
        if exc.status >= 500 or exc.status in (401, 429):
            raise
        if batch.height == 1:
            return [], [(batch["message_key"][0], f"{exc.status}:{exc.code}")]
        half = batch.height // 2
        left = _add_bisecting(client, contact_list_id, batch.head(half), channel)
        right = _add_bisecting(client, contact_list_id, batch.tail(batch.height - half), channel)
        return left[0] + right[0], left[1] + right[1]


def _settle_pushing(
    engine: Engine, client: GenesysClient, genesys: GenesysSettings, *, run_id: str, now: datetime
) -> dict[str, int]:
    with engine.begin() as conn:
        pushing = messages_in(conn, ("pushing",))
    settled = {"pushed": 0, "ready": 0}
    if pushing.height == 0:
        return settled
    for (route, recorded), part in pushing.with_columns(route_of()).group_by(
        ["route", "genesys_contact_list_id"], maintain_order=True
    ):
        names = names_for(str(route), genesys)
        campaign = client.find_campaign(names["campaign"])
        list_id = recorded or ((campaign or {}).get("contactList") or {}).get("id")
        found_list = {"id": list_id} if list_id else client.find_contact_list(names["contact_list"])
        present: set[str] = set()
        if found_list is not None:
            present = {
                c["id"]
                for c in client.get_contacts(found_list["id"], part["message_key"].to_list())
            }
        arrived = part.filter(pl.col("message_key").is_in(list(present)))
        missing = part.filter(~pl.col("message_key").is_in(list(present)))
        with engine.begin() as conn:
            if arrived.height:
                settled["pushed"] += transition(
                    conn,
                    arrived.select("message_key").with_columns(
                        pl.lit(found_list["id"] if found_list else None).alias(
                            "genesys_contact_list_id"
                        ),
                        pl.lit(campaign["id"] if campaign else None).alias("genesys_campaign_id"),
                    ),
                    from_states=("pushing",),
                    to_state="pushed",
                    run_id=run_id,
                    now=now,
                    detail="settled after a crash: found in the Genesys contact list",
                )
            if missing.height:
                settled["ready"] += transition(
                    conn,
                    missing.select("message_key"),
                    from_states=("pushing",),
                    to_state="ready",
                    run_id=run_id,
                    now=now,
                    detail="settled after a crash: not in Genesys, will be added again",
                )
    return settled


def _cancel(
    engine: Engine,
    client: GenesysClient,
    stale: pl.DataFrame,
    live: pl.DataFrame,
    *,
    run_id: str,
    now: datetime,
    result: PushResult,
) -> None:
    """Cancel messages the re-check found stale.

    ``ready`` ones were never added: cancelled at once. ``pushed`` ones: made uncontactable,
    read back; verified uncontactable and not attempted -> deleted, then ``cancelled``; the
    read-back shows an attempt -> that outcome is recorded (it was sent); not verified -> stays
    ``pushed`` with state_reason ``cancel_pending`` and is tried again next run.
    """
    if stale.height == 0:
        return
    joined = stale.join(live, on="message_key")
    confirmed = [joined.filter(pl.col("state") == "ready").select("message_key", "detail")]
    remote = joined.filter(pl.col("state") == "pushed")
    for (list_id,), rows in remote.group_by(["genesys_contact_list_id"], maintain_order=True):
        if list_id is None:
            continue
        verified, attempts, unverified = settle_uncontactable(client, str(list_id), rows)
        record_attempts(engine, attempts, run_id=run_id, now=now, from_states=("pushed",))
        if verified.height:
            try:
                client.delete_contacts(str(list_id), verified["message_key"].to_list())
                failpoint("push.after_remote_delete")
            except GenesysError as exc:
                log.warning("cancelled contacts not deleted (uncontactable anyway): %s", exc)
        confirmed.append(verified.join(rows.select("message_key", "detail"), on="message_key"))
        if unverified.height:
            with engine.begin() as conn:
                result.cancel_pending += transition(
                    conn,
                    unverified,
                    from_states=("pushed",),
                    to_state="pushed",
                    run_id=run_id,
                    now=now,
                    detail="cancel_pending",
                )
    done = pl.concat(confirmed).join(joined.select("message_key", "channel"), on="message_key")
    with engine.begin() as conn:
        for (channel, detail), rows in done.group_by(["channel", "detail"], maintain_order=True):
            n = transition(
                conn,
                rows.select("message_key", "detail"),
                from_states=("ready", "pushed"),
                to_state="cancelled",
                run_id=run_id,
                now=now,
            )
            exclude_decisions(conn, rows, reason=str(detail), detail="re-checked before the push")
            key = f"{channel}:{detail}"
            result.cancelled[key] = result.cancelled.get(key, 0) + n


# -- The steps of one push ---------------------------------------------------------------------
#
# ``push_waves_to_genesys`` runs them in order through a :class:`Steps` runner: plainly here
# (``Steps()``), as named Prefect tasks in flows.push_waves (the same functions, ``task.fn``).
# Every step returns its own counts (a :class:`PushResult` fragment) instead of mutating a
# shared one, so a step is a function of its inputs and the outbox.


def ready_and_settle(
    engine: Engine,
    client: GenesysClient,
    genesys: GenesysSettings,
    *,
    now: datetime,
    horizon: timedelta,
    run_id: str,
) -> PushResult:
    """Steps 1-2: mark the waves opening within the horizon ``ready`` (expire those whose
    window is over), then settle messages left ``pushing`` by a crash."""
    result = PushResult()
    with engine.begin() as conn:
        ready_waves = mark_ready(conn, now=now, horizon=horizon, run_id=run_id)
    result.ready_waves = ready_waves.height
    failpoint("push.after_ready")
    failpoint("push.before_token")
    result.settled = _settle_pushing(engine, client, genesys, run_id=run_id, now=now)
    failpoint("push.after_settle")
    return result


def cancel_stale(
    engine: Engine,
    client: GenesysClient,
    genesys: GenesysSettings,
    cadence: CadenceSettings,
    fresh: Normalized,
    *,
    now: datetime,
    run_id: str,
) -> tuple[PushResult, list[str]]:
    """Step 3: cancel the live messages the re-check on ``fresh`` finds paid or opted out
    since planning, and put global opt-outs on the Genesys DNC list. Returns the counts and
    the DNC list ids every campaign must reference."""
    result = PushResult()
    with engine.begin() as conn:
        live = messages_in(conn, ("ready", "pushed"), window_end_after=now)
    if live.height:
        stale = recheck(live, fresh, cadence, now=now)
        _cancel(engine, client, stale, live, run_id=run_id, now=now, result=result)
    dnc_id, result.dnc_added = _sync_dnc(engine, client, genesys, fresh, run_id=run_id, now=now)
    return result, [dnc_id]


def outstanding_routes(engine: Engine, *, now: datetime) -> list[tuple[str, pl.DataFrame]]:
    """The live (ready or pushed) messages whose window has not ended, per route (sms,
    email-<kind>), in outbox order."""
    with engine.begin() as conn:
        live = messages_in(conn, ("ready", "pushed"), window_end_after=now)
    if live.height == 0:
        return []
    return [
        (str(route), part)
        for (route,), part in live.with_columns(route_of()).group_by(["route"], maintain_order=True)
    ]


@dataclass
class WavePush:
    """The ready contacts of one wave a push adds to one route's current contact list."""

    route: str
    wave_id: str
    messages: pl.DataFrame
    contact_list_id: str
    campaign_id: str

    @property
    def label(self) -> str:
        """``2026-11-23 America/Chicago 09:00 sms (1,234 contacts)``: the wave's local date,
        zone and slot start (local wall time in its first zone), route and size."""
        first = self.messages.row(0, named=True)
        zone = str(first["time_zone"]).split("|")[0]
        start = first["wave_start_utc"]
        try:
            local = start.replace(tzinfo=UTC).astimezone(ZoneInfo(zone))
            slot = f"{local:%H:%M}"
        except (ZoneInfoNotFoundError, ValueError):
            slot = f"{start:%H:%M} UTC"
        return (
            f"{first['local_send_date']} {zone} {slot} {self.route}"
            f" ({self.messages.height:,} contact{'' if self.messages.height == 1 else 's'})"
        )


@dataclass
class RoutePlan:
    """What the capacity step decided for one route: its Genesys contact list and campaign,
    the waves to add now (earliest first) and the counts of what it deferred. No campaign
    (None) when the route has nothing pushed and nothing whose slot has started."""

    route: str
    contact_list_id: str | None
    campaign_id: str | None
    waves: list[WavePush]
    result: PushResult


def plan_route(
    engine: Engine,
    client: GenesysClient,
    route: str,
    outstanding: pl.DataFrame,
    *,
    genesys: GenesysSettings,
    window: WindowSettings,
    now: datetime,
    run_id: str,
    dnc_ids: Sequence[str] = (),
    templates: TemplateSet | None = None,
) -> RoutePlan:
    """Steps 4-5 for one route: the ready messages whose slot has started (never before),
    e-mails without template values deferred (fail closed), capacity (earliest deadline
    first; the rest ``deferred``), the campaign and its list ensured, the list rolled over
    when full. No campaign when the route has nothing pushed and nothing whose slot has
    started."""
    result = PushResult()
    # Never before the window opens: a contact is added only once its slot has started
    # (push-waves runs every 15 minutes and every slot starts on a UTC quarter hour).
    outstanding = pl.concat(
        [
            outstanding.filter(pl.col("state") == "pushed"),
            addable(outstanding.filter(pl.col("state") == "ready"), now=now),
        ]
    )
    if route.startswith("email"):
        # fail closed: without its variables Genesys would render blanks into the mail
        blank = outstanding.filter(
            (pl.col("state") == "ready") & pl.col("template_values").is_null()
        ).select("message_key")
        if blank.height:
            with engine.begin() as conn:
                result.no_template_values += transition(
                    conn,
                    blank,
                    from_states=("ready",),
                    to_state="deferred",
                    run_id=run_id,
                    now=now,
                    detail="missing_template_values",
                )
                exclude_decisions(
                    conn,
                    blank,
                    reason="missing_template_values",
                    detail="planned without template values (before content templates)",
                )
            outstanding = outstanding.join(blank, on="message_key", how="anti")
    if outstanding.height == 0:
        # nothing pushed into this route and nothing whose slot has started: no campaign
        # to ensure or start yet (its time set would have no zone)
        return RoutePlan(route, None, None, [], result)
    fits = capacity_plan(outstanding, now=now, messages_per_minute=genesys.messages_per_minute)
    over = fits.filter(~pl.col("fits")).join(
        outstanding.filter(pl.col("state") == "ready").select("message_key"), on="message_key"
    )
    if over.height:
        with engine.begin() as conn:
            result.deferred += transition(
                conn,
                over.select("message_key"),
                from_states=("ready",),
                to_state="deferred",
                run_id=run_id,
                now=now,
                detail="deferred_capacity",
            )
            exclude_decisions(
                conn,
                over,
                reason="deferred_capacity",
                detail="over messagesPerMinute x minutes left in the window",
            )
    ready = outstanding.filter(pl.col("state") == "ready").join(
        over.select("message_key"), on="message_key", how="anti"
    )
    zones = sorted({label.split("|")[0] for label in outstanding["time_zone"].unique().to_list()})
    # Also when nothing is ready: contacts pushed by a run that died before turning the
    # campaign on must still go out, so the campaign is ensured and started every time.
    list_id, campaign_id = _ensure_objects(
        client, route, genesys, window, zones, dnc_ids, templates
    )
    if ready.height:
        list_id, room = _room(
            engine,
            client,
            route,
            genesys,
            list_id=list_id,
            campaign_id=campaign_id,
            incoming=ready.height,
        )
        if room < ready.height:
            # earliest window end first; the rest stays ready for a later push
            result.waiting_for_list += ready.height - room
            ready = ready.sort("window_end_utc", "wave_start_utc", "message_key").head(room)
    result.contact_lists[route] = list_id
    result.campaigns[route] = campaign_id
    waves = [
        WavePush(route, str(wave_id), wave, list_id, campaign_id)
        for (wave_id,), wave in ready.group_by(["wave_id"], maintain_order=True)
    ]
    return RoutePlan(route, list_id, campaign_id, waves, result)


def push_wave(
    engine: Engine,
    client: GenesysClient,
    wave: WavePush,
    *,
    genesys: GenesysSettings,
    run_id: str,
    now: datetime,
    on_batch: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
) -> PushResult:
    """Step 6 for one wave: its contacts in batches of ``push_batch_size``,
    ``push_concurrency`` calls in flight, the state changes of many batches grouped in one
    transaction (:func:`_push_batches`, which also fires ``push.between_waves`` once the
    wave's last batch is recorded). Returns this wave's counts."""
    result = PushResult()
    batches = [
        (str(wave.wave_id), wave.messages.slice(start, genesys.push_batch_size))
        for start in range(0, wave.messages.height, genesys.push_batch_size)
    ]
    _push_batches(
        engine,
        client,
        batches,
        wave.route,
        contact_list_id=wave.contact_list_id,
        campaign_id=wave.campaign_id,
        run_id=run_id,
        now=now,
        result=result,
        concurrency=genesys.push_concurrency,
        progress=on_batch,
        stop=stop,
    )
    log.info(
        "wave %s: %d pushed, %d rejected in %d batches",
        wave.wave_id,
        result.pushed,
        result.rejected,
        result.batches,
    )
    return result


def start_campaign(client: GenesysClient, campaign_id: str) -> None:
    """Step 7: turn the route's campaign on (also when nothing new was added: contacts
    pushed by a run that died before this must still go out)."""
    failpoint("push.before_campaign_start")
    client.set_campaign_status(campaign_id, "on")
    failpoint("push.after_campaign_start")


def merge(into: PushResult, part: PushResult) -> PushResult:
    """Add a step's counts to the run's."""
    for name in ("ready_waves", "deferred", "pushed", "rejected", "batches", "dnc_added"):
        setattr(into, name, getattr(into, name) + getattr(part, name))
    for name in ("waiting_for_list", "cancel_pending", "no_template_values"):
        setattr(into, name, getattr(into, name) + getattr(part, name))
    for name in ("settled", "cancelled"):
        total = getattr(into, name)
        for key, n in getattr(part, name).items():
            total[key] = total.get(key, 0) + n
    into.campaigns |= part.campaigns
    into.contact_lists |= part.contact_lists
    return into


class Steps:
    """How :func:`push_waves_to_genesys` runs its steps: ``run`` calls one and returns its
    result; ``submit`` starts one in a worker thread (the caller's context copied, so a
    Prefect subclass's task runs belong to the flow run) and returns its future.
    flows.push_waves subclasses it to run each step as a named Prefect task (``label`` is its
    run name)."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def run(self, step: str, label: str, fn: Callable[..., Any], /, *args: Any, **kw: Any) -> Any:
        return fn(*args, **kw)

    def submit(
        self, step: str, label: str, fn: Callable[..., Any], /, *args: Any, **kw: Any
    ) -> Future[Any]:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="push-wave")
        context = contextvars.copy_context()
        return self._pool.submit(context.run, self.run, step, label, fn, *args, **kw)

    def close(self) -> None:
        """Release the worker threads of submitted steps."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def push_waves_to_genesys(
    engine: Engine,
    client: GenesysClient,
    *,
    genesys: GenesysSettings,
    window: WindowSettings,
    cadence: CadenceSettings,
    now: datetime,
    horizon: timedelta,
    run_id: str,
    fresh: Normalized | None = None,
    progress: Callable[[int, int], None] | None = None,
    templates: TemplateSet | None = None,
    steps: Steps | None = None,
) -> PushResult:
    """Run one push (see the module docstring). ``fresh`` is a new extract for the re-check;
    ``templates`` the e-mail content templates (default: the bundled ones); ``steps`` how
    each step runs (default: plain calls; flows.push_waves: named Prefect tasks)."""
    runner = steps or Steps()
    try:
        return _push(
            engine,
            client,
            runner,
            genesys=genesys,
            window=window,
            cadence=cadence,
            now=now,
            horizon=horizon,
            run_id=run_id,
            fresh=fresh,
            progress=progress,
            templates=templates or load_templates(),
        )
    finally:
        runner.close()


def _push(
    engine: Engine,
    client: GenesysClient,
    runner: Steps,
    *,
    genesys: GenesysSettings,
    window: WindowSettings,
    cadence: CadenceSettings,
    now: datetime,
    horizon: timedelta,
    run_id: str,
    fresh: Normalized | None,
    progress: Callable[[int, int], None] | None,
    templates: TemplateSet,
) -> PushResult:
    at = f"{now:%Y-%m-%d %H:%M} UTC"
    minutes = int(horizon.total_seconds() // 60)
    result = runner.run(
        "ready",
        f"ready waves opening by {at} + {minutes} min, settle interrupted adds",
        ready_and_settle,
        engine,
        client,
        genesys,
        now=now,
        horizon=horizon,
        run_id=run_id,
    )
    dnc_ids: list[str] = []
    if fresh is not None:
        cancelled, dnc_ids = runner.run(
            "cancel",
            f"cancel messages paid or opted out since planning, at {at}",
            cancel_stale,
            engine,
            client,
            genesys,
            cadence,
            fresh,
            now=now,
            run_id=run_id,
        )
        merge(result, cancelled)

    routes = outstanding_routes(engine, now=now)
    todo_total = sum(part.filter(pl.col("state") == "ready").height for _, part in routes)
    counter = {"done": 0}
    counter_lock = threading.Lock()

    def on_batch(n: int) -> None:
        with counter_lock:
            counter["done"] += n
            done = counter["done"]
        if progress:
            progress(done, todo_total)

    for route, outstanding in routes:
        plan = runner.run(
            "capacity",
            f"capacity {route} at {at}: {outstanding.height:,} live,"
            f" budget {genesys.messages_per_minute:,}/min",
            plan_route,
            engine,
            client,
            route,
            outstanding,
            genesys=genesys,
            window=window,
            now=now,
            run_id=run_id,
            dnc_ids=dnc_ids,
            templates=templates,
        )
        merge(result, plan.result)
        if plan.campaign_id is None:
            continue
        # One task run per wave, earliest first, push_waves_in_flight of them at once; each
        # groups its batches' state changes (_push_batches) with push_concurrency calls in
        # flight, every call under the client's one rate limit. Waves never wait for each
        # other: a wave waiting out a 429 (or its slowest batch) leaves the client busy with
        # the next. A failing wave starts no further wave of the route and stops the running
        # ones at their next group (their calls in flight are recorded, their unsent batches
        # go back to ready): the campaign is not turned on, and the next push settles and
        # starts it.
        _push_route_waves(
            plan.waves,
            result,
            in_flight=genesys.push_waves_in_flight,
            push=lambda wave, stop: runner.submit(
                "push wave",
                f"push wave {wave.label}",
                push_wave,
                engine,
                client,
                wave,
                genesys=genesys,
                run_id=run_id,
                now=now,
                on_batch=on_batch,
                stop=stop,
            ),
        )
        runner.run(
            "start campaign", f"start campaign {route}", start_campaign, client, plan.campaign_id
        )
    return result


def _push_route_waves(
    waves: Sequence[WavePush],
    result: PushResult,
    *,
    in_flight: int,
    push: Callable[[WavePush, threading.Event], Future[PushResult]],
) -> None:
    """Run ``push(wave, stop)`` for every wave, earliest first, at most ``in_flight`` at
    once, merging each wave's counts into ``result`` as it finishes. After a wave fails (or
    the caller is interrupted) no further wave is started and ``stop`` is set, so the running
    ones start no new group of batches: they finish and record the calls in flight, and the
    first error is raised."""
    todo = deque(waves)
    stop = threading.Event()
    running: set[Future[PushResult]] = set()
    error: BaseException | None = None
    try:
        while running or (todo and error is None):
            while todo and error is None and len(running) < max(1, in_flight):
                running.add(push(todo.popleft(), stop))
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                exc = future.exception()
                if exc is not None:
                    error = error or exc
                    stop.set()
                else:
                    merge(result, future.result())
    except BaseException:
        stop.set()  # interrupted: the running waves stop at their next group
        raise
    if error is not None:
        raise error
