"""Inbound SMS: record the keyword, answer, and carry the consent change into Genesys.

:func:`handle_inbound` runs inside the webhook request: it classifies the text
(``tasks.keywords.classify``), records the message once per provider message id
(``inbound_messages``; a provider retry gets the same answer and records nothing new), writes
one ``consent_events`` row per keyword and customer with the number (``source`` =
``keyword:twilio`` / ``keyword:genesys``; no customer known: one row with the number only), a
``callback_requests`` row for CALL, and returns the reply. :func:`apply_inbound` runs in the
worker: an opt-out puts the number and the customers' e-mail addresses on the Genesys DNC list
``<prefix>-opt-outs`` (and ``dnc_entries``) and cancels their pending reminders
(``opted_out_since_planning``, the issue-8 way); an opt-in takes the number off the DNC list.
A Genesys failure leaves the row ``recorded``; the next tick tries again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tasks.alerts import Directory, _naive, cancel_reminders, pending_reminders
from tasks.errors import GenesysError
from tasks.genesys import GenesysClient
from tasks.keywords import KeywordMatch, classify
from tasks.settings import AlertSettings, GenesysSettings, RenderSettings

__all__ = ["InboundResult", "apply_inbound", "handle_inbound", "reply_for"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InboundResult:
    match: KeywordMatch
    reply: str | None
    customers: tuple[str, ...]
    duplicate: bool


def _payment_link(engine: Engine, customers: tuple[str, ...], render: RenderSettings) -> str:
    if customers:
        with engine.begin() as conn:
            row = conn.execute(
                sa.text(
                    "select link_token from messages where customer_id in ("
                    + ", ".join(f":c{i}" for i in range(len(customers)))
                    + ") and link_token is not null order by updated_at_utc desc limit 1"
                ),
                {f"c{i}": c for i, c in enumerate(customers)},
            ).first()
        if row is not None:
            return render.payment_link_base + str(row[0])
    return render.payment_link_base


def reply_for(
    match: KeywordMatch, alerts: AlertSettings, render: RenderSettings, payment_link: str
) -> str | None:
    """The reply text of an action (None: no reply)."""
    text = {
        "opt_out": alerts.stop_reply,
        "opt_in": alerts.start_reply,
        "help": alerts.help_reply,
        "payment_link": alerts.payment_link_reply,
        "callback_request": alerts.callback_reply,
    }.get(match.action)
    if text is None:
        return None
    return text.format(
        CompanyName=render.company_name,
        SupportPhone=render.support_phone,
        PaymentLink=payment_link,
    )


def handle_inbound(
    engine: Engine,
    directory: Directory,
    *,
    source: str,
    message_id: str,
    from_address: str,
    to_address: str | None,
    text: str | None,
    now: datetime,
    alerts: AlertSettings,
    render: RenderSettings,
) -> InboundResult:
    """Record one inbound message and return what to answer (see the module docstring)."""
    now = _naive(now)
    match = classify(text, alerts.custom_keywords)
    customers = tuple(directory.customers_by_phone(from_address))
    with engine.begin() as conn:
        seen = conn.execute(
            sa.text("select reply from inbound_messages where message_id = :m"), {"m": message_id}
        ).first()
        if seen is not None:
            return InboundResult(match, seen[0], customers, True)
    link = (
        _payment_link(engine, customers, render)
        if match.action == "payment_link"
        else render.payment_link_base
    )
    reply = reply_for(match, alerts, render, link)
    state = "recorded" if match.action in ("opt_out", "opt_in") else "applied"
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into inbound_messages (message_id, source, from_address, to_address,"
                " body, keyword, action, reply, state, received_at_utc, updated_at_utc)"
                " values (:m, :s, :f, :t, :b, :k, :a, :r, :st, :n, :n)"
            ),
            {
                "m": message_id,
                "s": source,
                "f": from_address,
                "t": to_address,
                "b": (text or "")[:1000],
                "k": match.keyword,
                "a": match.action,
                "r": reply,
                "st": state,
                "n": now,
            },
        )
        if match.action != "none":
            for customer in customers or (None,):
                conn.execute(
                    sa.text(
                        "insert into consent_events (consent_event_id, customer_id, address,"
                        " channel, status, keyword, action, source, occurred_at_utc,"
                        " recorded_at_utc, inbound_message_id) values (:id, :c, :a, 'sms', :st,"
                        " :k, :ac, :src, :n, :n, :m)"
                    ),
                    {
                        "id": f"{source}:{message_id}:{customer or '-'}",
                        "c": customer,
                        "a": from_address,
                        "st": match.status,
                        "k": match.keyword,
                        "ac": match.action,
                        "src": f"keyword:{source}",
                        "n": now,
                        "m": message_id,
                    },
                )
        if match.action == "callback_request":
            conn.execute(
                sa.text("insert into callback_requests values (:m, :c, :a, :n, :s)"),
                {
                    "m": message_id,
                    "c": customers[0] if customers else None,
                    "a": from_address,
                    "n": now,
                    "s": source,
                },
            )
    return InboundResult(match, reply, customers, False)


def _dnc_list_id(client: GenesysClient, genesys: GenesysSettings) -> str:
    name = f"{genesys.name_prefix}-opt-outs"
    dnc = client.find_dnc_list(name) or client.create_dnc_list(name, "Any")
    return str(dnc["id"])


def apply_inbound(
    engine: Engine,
    client: GenesysClient | None,
    directory: Directory,
    *,
    genesys: GenesysSettings,
    now: datetime,
) -> int:
    """Carry recorded opt-outs / opt-ins into Genesys (DNC list, pending reminders)."""
    now = _naive(now)
    with engine.begin() as conn:
        rows = conn.execute(
            sa.text(
                "select message_id, from_address, action from inbound_messages"
                " where state = 'recorded' order by received_at_utc"
            )
        ).fetchall()
    if not rows or client is None:
        return 0
    done = 0
    for message_id, phone, action in rows:
        customers = directory.customers_by_phone(phone)
        try:
            dnc_id = _dnc_list_id(client, genesys)
            if action == "opt_out":
                emails = directory.addresses_of(customers)["email"].drop_nulls().to_list()
                client.add_dnc_phone_numbers(dnc_id, [phone])
                if emails:
                    client.add_dnc_email_addresses(dnc_id, emails)
                live = pending_reminders(engine, customer_ids=customers)
                cancel_reminders(
                    engine,
                    client,
                    live,
                    reason="opted_out_since_planning",
                    run_id=f"inbound-{message_id}",
                    now=now,
                )
                entries = [(phone, "phone"), *((e, "email") for e in emails)]
            else:
                client.remove_dnc_phone_numbers(dnc_id, [phone])
                entries = []
        except GenesysError as exc:
            log.warning("inbound consent not yet carried to Genesys, retried: %s", exc)
            continue
        with engine.begin() as conn:
            if action == "opt_out":
                known = {
                    r[0]
                    for r in conn.execute(
                        sa.text("select address from dnc_entries where address in :a").bindparams(
                            sa.bindparam("a", expanding=True)
                        ),
                        {"a": [a for a, _ in entries]},
                    )
                }
                for address, kind in entries:
                    if address not in known:
                        conn.execute(
                            sa.text("insert into dnc_entries values (:a, :k, :d, :n, :r)"),
                            {"a": address, "k": kind, "d": dnc_id, "n": now, "r": message_id},
                        )
            else:
                conn.execute(sa.text("delete from dnc_entries where address = :a"), {"a": phone})
            conn.execute(
                sa.text(
                    "update inbound_messages set state = 'applied', updated_at_utc = :n"
                    " where message_id = :m"
                ),
                {"n": now, "m": message_id},
            )
        done += 1
    return done


def captured_consent(engine: Engine) -> pl.DataFrame:
    """Keyword consent events as consent_state input (see ``tasks.alerts``)."""
    from tasks.alerts import stored_consent_events

    return stored_consent_events(engine)
