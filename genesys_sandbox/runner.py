"""The campaign runner: moves the virtual clock and sends what running campaigns would send.

Contract (``run(store, until)``; the caller holds the store lock)
------------------------------------------------------------
* For each minute ``t`` in ``[now, until)`` every campaign with status ``on`` works through
  the contacts of its list in queue order: contacts added with ``priority=true`` before the
  rest; inside each group ``contactSorts`` decide, and ties go by queue position (the newest
  priority add first, otherwise list order).  Up to ``messagesPerMinute`` attempts a minute;
  a contact is *reached* when the campaign gets to it within that budget.
* **Passes.**  Each campaign keeps its pass state (``Campaign.handled``): a contact attempted
  or skipped in the current pass is not reached again until a recycle.  ``recycle`` switch:
  ``on_exhaustion`` (default): at the first minute where nothing of the pass is left (no
  contact waiting for its window or a DNC expiry) and at least one contact was attempted in
  the pass, the campaign recycles (never in a minute that attempted something): every
  contact may be reached again, so contacts that are
  still callable and contactable are messaged AGAIN (all ``OUTBOUND-*`` codes are system
  codes).  An ``alwaysRunning`` campaign goes on from the top in that same minute (at most one
  recycle per minute); a normal one recycles and turns ``complete`` (turned on again, it
  starts from the top).  ``never``: no automatic recycle (a normal campaign turns
  ``complete`` and, turned on again, reaches only contacts not handled yet).
  ``DELETE .../progress`` recycles in both readings.
* A reached contact is skipped (reason in ``numberOfContactsSkipped``, no attempt) when it is
  not callable (contact or number), not contactable for the media, has no address, has an
  empty message under ``blank_message=skip``, is on one of the campaign's DNC lists for good,
  or its zone is missing/invalid/not in the callable time set.  A DNC entry with an expiry
  makes the contact wait until the expiry.
* **Windows.**  The window is read in the zone named by the list's ``callableTimeColumn``/
  ``contactableTimeColumn`` for the address column: with a callable time set, the slots of
  the set's entry for that zone; without one, 08:00-21:00 local; without a zone value,
  14:00-20:00 America/New_York.  ``outside_window=skip`` (default): a contact reached while its
  window is closed is skipped (``outside_contactable_time``) for the pass and retried only
  at the next recycle; ``reschedule``: it waits for its window (counted in the diagnostics'
  ``timeZoneRescheduledContactsCount``) and is attempted when the window opens.
* **Attempts.**  An attempt records ``latestSmsEvaluations``/``latestEmailEvaluations`` on the
  column with the wrap-up code (:mod:`genesys_sandbox.wrapups`), an entry in
  ``store.attempts``, and, unless the message is blank or too long, a ledger entry.  Then
  the campaign's digital rule sets' post-contact rules are evaluated (``rulesets``).
* ``skip_wrapup=code``: DNC, not-callable and time-zone skips also write a skip code on the
  column (see ``wrapups``); ``none`` (default) writes nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from genesys_sandbox.clock import iso
from genesys_sandbox.content import Content, email_content, render, sms_template_text
from genesys_sandbox.rulesets import apply_post_contact_rules
from genesys_sandbox.store import Campaign, Contact, ContactList, Store
from genesys_sandbox.wrapups import BLANK, SKIP_CODES, TOO_LONG, send_code, utf16_length

__all__ = ["RunSummary", "run", "sendable_order"]

MINUTE = timedelta(minutes=1)
DAILY_WINDOW = (time(8, 0), time(21, 0))
FALLBACK_ZONE = "America/New_York"
FALLBACK_WINDOW = (time(14, 0), time(20, 0))

WindowKey = tuple[str, ...]


@dataclass
class RunSummary:
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    attempted: int = 0
    recycles: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "now": iso(now),
            "sent": self.sent,
            "attempted": self.attempted,
            "recycles": self.recycles,
            "delivered": self.delivered,
            "failed": self.failed,
            "skipped": dict(sorted(self.skipped.items())),
        }


@dataclass(order=True)
class _Item:
    order: int
    contact: Contact = field(compare=False)
    column: str | None = field(compare=False)
    address: str = field(compare=False)
    key: WindowKey | None = field(compare=False, default=None)
    blocked_until: datetime | None = field(compare=False, default=None)
    reason: str | None = field(compare=False, default=None)


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _parse_hms(text: str) -> time:
    return time.fromisoformat(text)


class _Windows:
    """Open/closed state of every window key, cached per minute."""

    def __init__(self, slots: dict[str, list[tuple[int, time, time]]]) -> None:
        self._slots = slots
        self._minute: datetime | None = None
        self._cache: dict[WindowKey, bool] = {}

    def is_open(self, key: WindowKey, t: datetime) -> bool:
        if self._minute != t:
            self._minute, self._cache = t, {}
        if key not in self._cache:
            self._cache[key] = self._compute(key, t)
        return self._cache[key]

    def _compute(self, key: WindowKey, t: datetime) -> bool:
        kind = key[0]
        zone_name = FALLBACK_ZONE if kind == "default" else key[1]
        local = t.replace(tzinfo=UTC).astimezone(ZoneInfo(zone_name))
        now = local.time()
        if kind == "set":
            day = local.isoweekday()
            return any(d == day and a <= now < b for d, a, b in self._slots.get(key[1], ()))
        start, stop = FALLBACK_WINDOW if kind == "default" else DAILY_WINDOW
        return start <= now < stop


def sendable_order(cl: ContactList, campaign: Campaign) -> list[Contact]:
    """The list's contacts in the order the campaign works through them."""
    contacts = sorted(cl.contacts.values(), key=lambda c: c.queue_key)
    for sort in reversed(campaign.contact_sorts):
        name = sort.get("fieldName", "")
        numeric = bool(sort.get("numeric"))
        descending = str(sort.get("direction", "ASC")).upper() == "DESC"

        def key(c: Contact, name: str = name, numeric: bool = numeric) -> tuple[int, Any]:
            raw = c.data.get(name, "")
            if numeric:
                try:
                    return (0, float(raw))
                except ValueError:
                    return (1, 0.0)
            return (0 if raw != "" else 1, raw)

        present = [c for c in contacts if key(c)[0] == 0]
        missing = [c for c in contacts if key(c)[0] == 1]
        present.sort(key=key, reverse=descending)
        contacts = present + missing
    contacts.sort(key=lambda c: 0 if c.priority else 1)
    return contacts


class _CampaignRun:
    def __init__(self, store: Store, campaign: Campaign) -> None:
        self.store = store
        self.config = store.config
        self.campaign = campaign
        self.cl = store.contact_lists[campaign.contact_list_id]
        slots: dict[str, list[tuple[int, time, time]]] = {}
        self.time_set_zones: set[str] | None = None
        if campaign.callable_time_set_id is not None:
            ts = store.time_sets[campaign.callable_time_set_id]
            self.time_set_zones = set()
            for entry in ts.callable_times:
                zone = entry["timeZoneId"]
                self.time_set_zones.add(zone)
                slots.setdefault(zone, []).extend(
                    (int(s["day"]), _parse_hms(s["startTime"]), _parse_hms(s["stopTime"]))
                    for s in entry["timeSlots"]
                )
        self.windows = _Windows(slots)
        self.dnc_lists = [store.dnc_lists[i] for i in campaign.dnc_list_ids]
        self.rule_sets = [store.rule_sets[i] for i in campaign.rule_set_ids if i in store.rule_sets]
        self._load()

    def _load(self) -> None:
        self.pending: list[_Item] = []
        self.cursor = 0
        self.waiting: dict[WindowKey, list[_Item]] = {}
        self.blocked: list[_Item] = []
        handled = self.campaign.handled
        for order, contact in enumerate(sendable_order(self.cl, self.campaign)):
            if contact.id in handled or contact.hold_until_recycle:
                continue
            self.pending.append(self._item(order, contact))

    def _columns(self) -> list[str]:
        if self.campaign.sms_config is not None:
            return [self.campaign.sms_config["phoneColumn"]]
        return list((self.campaign.email_config or {}).get("emailColumns") or [])

    def _item(self, order: int, contact: Contact) -> _Item:
        channel = self.campaign.channel
        columns = self._columns()
        first = columns[0] if columns else None
        media = "SMS" if channel == "sms" else "Email"
        if not contact.callable or not all(
            contact.phone_number_status.get(c, True) for c in columns if channel == "sms"
        ):
            return _Item(order, contact, first, "", reason="not_callable")
        candidates = [
            (c, contact.data.get(c, "").strip())
            for c in columns
            if contact.contactable(media, c) and contact.data.get(c, "").strip()
        ]
        if not candidates:
            any_address = any(contact.data.get(c, "").strip() for c in columns)
            reason = "not_contactable" if any_address else "no_address"
            return _Item(order, contact, first, "", reason=reason)
        blank = not self.message_for(contact)[1].strip() and not self.empty_mail
        if self.config.blank_message == "skip" and blank:
            return _Item(order, contact, first, "", reason="no_message")
        chosen: tuple[str, str, datetime | None] | None = None
        for column, address in candidates:
            blocked, until = self._dnc_block(address)
            if not blocked:
                chosen = (column, address, None)
                break
            if until is not None and chosen is None:
                chosen = (column, address, until)
        if chosen is None:
            return _Item(order, contact, candidates[0][0], candidates[0][1], reason="dnc")
        column, address, blocked_until = chosen
        key = self._window_key(contact, column)
        if isinstance(key, str):
            return _Item(order, contact, column, address, reason=key)
        return _Item(order, contact, column, address, key=key, blocked_until=blocked_until)

    def _dnc_block(self, address: str) -> tuple[bool, datetime | None]:
        """(blocked, until): blocked for good when ``until`` is ``None``."""
        latest: datetime | None = None
        blocked = False
        for dnc in self.dnc_lists:
            listed, expiry = dnc.entry(self.campaign.channel, address)
            if not listed or (expiry is not None and expiry <= self.store.now):
                continue
            if expiry is None:
                return True, None
            blocked = True
            latest = expiry if latest is None else max(latest, expiry)
        return blocked, latest

    def _window_key(self, contact: Contact, column: str) -> WindowKey | str:
        zone_column = self.cl.zone_column(column)
        zone = contact.data.get(zone_column, "").strip() if zone_column else ""
        if self.time_set_zones is not None:
            if not zone:
                return "no_time_zone"
            if _zone(zone) is None:
                return "invalid_time_zone"
            if zone not in self.time_set_zones:
                return "zone_not_in_callable_time_set"
            return ("set", zone)
        if not zone:
            return ("default",)
        if _zone(zone) is None:
            return "invalid_time_zone"
        return ("daily", zone)

    def content_for(self, contact: Contact) -> Content:
        """What the campaign sends ``contact`` (see :mod:`genesys_sandbox.content`)."""
        mode = self.config.template_rendering
        cfg = self.campaign.sms_config or self.campaign.email_config or {}
        template = (cfg.get("contentTemplate") or {}).get("id")
        response = self.store.responses.get(template) if template else None
        if self.campaign.sms_config is not None:
            if cfg.get("messageColumn"):
                return Content("", contact.data.get(cfg["messageColumn"], ""))
            if response is None:
                return Content("", "")
            return Content("", render(sms_template_text(response), contact.data, response, mode))
        if response is None:
            return Content("", "")
        return email_content(response, contact.data, mode)

    def message_for(self, contact: Contact) -> tuple[str, str]:
        """(subject, body) of the message to ``contact``; subject is empty for SMS."""
        content = self.content_for(contact)
        return content.subject, content.body

    @property
    def empty_mail(self) -> bool:
        """An e-mail campaign without a template sends empty mails (``send_empty``)."""
        cfg = self.campaign.email_config
        return cfg is not None and not cfg.get("contentTemplate")

    @property
    def exhausted(self) -> bool:
        return self.cursor >= len(self.pending) and not self.waiting and not self.blocked

    @property
    def idle(self) -> bool:
        """Nothing can change in later minutes of this run."""
        if not self.campaign.always_running:
            return False  # it turns complete at its next step
        return self.exhausted and (
            self.config.recycle == "never" or self.campaign.attempted_in_pass == 0
        )

    def _reopen(self, t: datetime) -> None:
        back: list[_Item] = []
        for key in [k for k in self.waiting if self.windows.is_open(k, t)]:
            back.extend(self.waiting.pop(key))
        if self.blocked:
            still = []
            for item in self.blocked:
                if item.blocked_until is not None and item.blocked_until <= t:
                    back.append(item)
                else:
                    still.append(item)
            self.blocked = still
        if back:
            self.pending = sorted(self.pending[self.cursor :] + back)
            self.cursor = 0

    def recycle(self) -> None:
        self.campaign.recycle()
        for contact in self.cl.contacts.values():
            contact.hold_until_recycle = False
        self._load()

    def step(self, t: datetime, summary: RunSummary) -> None:
        self._reopen(t)
        budget = self.campaign.messages_per_minute
        gap = 60.0 / budget
        sent = 0
        recycled = False
        while True:
            while self.cursor < len(self.pending) and sent < budget:
                item = self.pending[self.cursor]
                self.cursor += 1
                if item.reason is not None:
                    self._skip(item, item.reason)
                    continue
                if item.blocked_until is not None and item.blocked_until > t:
                    self.blocked.append(item)
                    continue
                assert item.key is not None
                if not self.windows.is_open(item.key, t):
                    if self.config.outside_window == "skip":
                        self._skip(item, "outside_contactable_time")
                    else:
                        self.campaign.rescheduled.add(item.contact.id)
                        self.waiting.setdefault(item.key, []).append(item)
                    continue
                self._attempt(item, t + timedelta(seconds=round(sent * gap, 3)), summary)
                sent += 1
            if sent > 0 or not self.exhausted or recycled:
                return
            attempted = self.campaign.attempted_in_pass > 0
            if self.config.recycle == "on_exhaustion" and (
                attempted or not self.campaign.always_running
            ):
                self.recycle()
                summary.recycles += 1
                recycled = True
            if not self.campaign.always_running:
                self.campaign.status = "complete"
                return
            if not recycled:
                return

    def _skip(self, item: _Item, reason: str) -> None:
        campaign, contact = self.campaign, item.contact
        campaign.handled.add(contact.id)
        campaign.skipped[contact.id] = reason
        code = SKIP_CODES.get(reason) if self.config.skip_wrapup == "code" else None
        if code is not None and item.column is not None:
            self._evaluate(contact, item.column, item.address, code, self.store.now)

    def _evaluate(
        self, contact: Contact, column: str, address: str, code: str, at: datetime
    ) -> None:
        sms = self.campaign.channel == "sms"
        evaluations = contact.sms_evaluations if sms else contact.email_evaluations
        evaluations[column] = {
            "contactColumn": column,
            "contactAddress": address,
            "messageType": "Sms" if sms else "Email",
            "wrapupCodeId": code,
            "timestamp": iso(at),
        }

    def _attempt(self, item: _Item, at: datetime, summary: RunSummary) -> None:
        contact, campaign, config = item.contact, self.campaign, self.config
        content = self.content_for(contact)
        body = content.body
        code: str | None = None
        if not body.strip() and not self.empty_mail:
            code = BLANK
        elif (
            campaign.sms_config is not None
            and config.campaign_sms_max_length is not None
            and utf16_length(body) > config.campaign_sms_max_length
        ):
            code = TOO_LONG
        if code is None:
            code = self._send(item, content, at, summary)
        self._evaluate(contact, item.column or "", item.address, code, at)
        campaign.attempted.add(contact.id)
        campaign.handled.add(contact.id)
        campaign.skipped.pop(contact.id, None)
        campaign.attempted_in_pass += 1
        summary.attempted += 1
        self.store.attempts.append(
            {
                "contact_id": contact.id,
                "contact_list_id": self.cl.id,
                "campaign_id": campaign.id,
                "recycle": campaign.recycles,
                "channel": campaign.channel,
                "column": item.column,
                "to": item.address,
                "wrapup_code": code,
                "sent": code not in (BLANK, TOO_LONG),
                "at": iso(at),
            }
        )
        apply_post_contact_rules(self.rule_sets, contact, campaign.channel, item.column, code)

    def _send(self, item: _Item, content: Content, at: datetime, summary: RunSummary) -> str:
        contact, campaign = item.contact, self.campaign
        common = {
            "to": item.address,
            "outcome_key": contact.id,
            "at": at,
            "source": "campaign",
            "contact_id": contact.id,
            "contact_list_id": self.cl.id,
            "campaign_id": campaign.id,
            "recycle": campaign.recycles,
        }
        if campaign.sms_config is not None:
            outcome, _ = self.store.send_sms(
                sender=campaign.sender_number or "", body=content.body, **common
            )
        else:
            from_address = (campaign.email_config or {}).get("fromAddress") or {}
            sender = f"{from_address.get('localPart', '')}@{from_address['domain']['id']}"
            outcome = self.store.send_email(
                sender=sender,
                subject=content.subject,
                body=content.body,
                body_html=content.html,
                **common,
            )
        code = send_code(self.config, outcome, f"{contact.id}:{campaign.recycles}")
        self.store.ledger[-1]["wrapup_code"] = code
        summary.sent += 1
        if outcome.delivered:
            summary.delivered += 1
        else:
            summary.failed += 1
        return code

    def finish(self) -> dict[str, str]:
        waiting = {
            i.contact.id: "outside_contactable_time" for q in self.waiting.values() for i in q
        }
        waiting |= {i.contact.id: "dnc" for i in self.blocked}
        self.campaign.waiting = waiting
        return {**self.campaign.skipped, **waiting}


def run(store: Store, until: datetime) -> RunSummary:
    """Advance ``store.now`` to ``until`` and let running campaigns send (see module doc)."""
    summary = RunSummary()
    runs = [_CampaignRun(store, c) for c in store.campaigns.values() if c.status == "on"]
    t = store.now
    while t < until:
        live = [r for r in runs if r.campaign.status == "on"]
        if not live:
            break
        for r in live:
            r.step(t, summary)
        t += MINUTE
        if all(r.idle for r in live if r.campaign.status == "on"):
            break
    for r in runs:
        summary.skipped.update(r.finish().values())
    store.now = until
    return summary
