"""The messaging-campaign runner: advances the virtual clock minute by minute and sends.

Contract (``run(store, until)``, caller holds the store lock)
------------------------------------------------------------
* For each minute ``t`` in ``[now, until)`` every campaign with status ``on`` sends up to
  ``messagesPerMinute`` messages, to contacts of its list in queue order: contacts added with
  ``priority=true`` before the rest; inside each group ``contactSorts`` decide, and ties go by
  queue position (the newest priority add first, otherwise list order).
* A contact is sent to at most once per channel and address column, ever: its system data
  (``latestSmsEvaluations``/``latestEmailEvaluations``) survives upserts.
* A contact is sendable at ``t`` when it is callable and contactable, has an address and a
  message, is on none of the campaign's DNC lists (an entry with an expiry stops blocking at
  its expiry), and ``t`` is inside its contactable window.  The window is read in the zone
  named by the list's ``callableTimeColumn``/``contactableTimeColumn`` for the address column:
  with a callable time set, the slots of the set's entry for that zone (a zone the set lacks
  is never contactable); without one, 08:00-21:00 local; a contact without a zone value falls
  back to 14:00-20:00 America/New_York, Genesys' documented default window.
* Skip reasons (``numberOfContactsSkipped`` and the run summary) are per contact, as they
  stand at the end of the run: ``not_callable``, ``not_contactable``, ``no_address``,
  ``no_message``, ``dnc``, ``no_time_zone``, ``invalid_time_zone``,
  ``zone_not_in_callable_time_set``, ``outside_contactable_time``.  Contacts still waiting
  for throughput in an open window are not skipped.
* A campaign that is not ``alwaysRunning`` turns ``complete`` when nothing is left to send.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from genesys_sandbox.clock import iso
from genesys_sandbox.store import Campaign, Contact, ContactList, Store
from genesys_sandbox.views import WRAPUP_CODES

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
    skipped: Counter[str] = field(default_factory=Counter)

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "now": iso(now),
            "sent": self.sent,
            "delivered": self.delivered,
            "failed": self.failed,
            "skipped": dict(sorted(self.skipped.items())),
        }


@dataclass(order=True)
class _Item:
    order: int
    contact: Contact = field(compare=False)
    column: str = field(compare=False)
    address: str = field(compare=False)
    blocked_until: datetime | None = field(compare=False, default=None)


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
        self.campaign = campaign
        self.cl = store.contact_lists[campaign.contact_list_id]
        self.reasons: dict[str, str] = {}
        self.queues: dict[WindowKey, list[_Item]] = {}
        self.blocked: list[tuple[WindowKey, _Item]] = []
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
        for order, contact in enumerate(sendable_order(self.cl, campaign)):
            self._enqueue(order, contact)

    def _columns(self) -> list[str]:
        if self.campaign.sms_config is not None:
            return [self.campaign.sms_config["phoneColumn"]]
        return list((self.campaign.email_config or {}).get("emailColumns") or [])

    def _enqueue(self, order: int, contact: Contact) -> None:
        channel = self.campaign.channel
        columns = self._columns()
        evaluations = contact.sms_evaluations if channel == "sms" else contact.email_evaluations
        if any(c in evaluations for c in columns):
            return
        media = "SMS" if channel == "sms" else "Email"
        if not contact.callable or not all(
            contact.phone_number_status.get(c, True) for c in columns if channel == "sms"
        ):
            self.reasons[contact.id] = "not_callable"
            return
        candidates = [
            (c, contact.data.get(c, "").strip())
            for c in columns
            if contact.contactable(media, c) and contact.data.get(c, "").strip()
        ]
        if not candidates:
            any_address = any(contact.data.get(c, "").strip() for c in columns)
            self.reasons[contact.id] = "not_contactable" if any_address else "no_address"
            return
        if not self.message_for(contact)[1]:
            self.reasons[contact.id] = "no_message"
            return
        chosen: tuple[str, str, datetime | None] | None = None
        for column, address in candidates:
            blocked, until = self._dnc_block(address)
            if not blocked:
                chosen = (column, address, None)
                break
            if until is not None and chosen is None:
                chosen = (column, address, until)
        if chosen is None:
            self.reasons[contact.id] = "dnc"
            return
        column, address, blocked_until = chosen
        key = self._window_key(contact, column)
        if isinstance(key, str):
            self.reasons[contact.id] = key
            return
        item = _Item(order, contact, column, address, blocked_until)
        if blocked_until is not None and blocked_until > self.store.now:
            self.blocked.append((key, item))
        else:
            heapq.heappush(self.queues.setdefault(key, []), item)

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

    def message_for(self, contact: Contact) -> tuple[str, str]:
        """(subject, body) of the message to ``contact``; subject is empty for SMS."""
        if self.campaign.sms_config is not None:
            cfg = self.campaign.sms_config
            if cfg.get("messageColumn"):
                return "", contact.data.get(cfg["messageColumn"], "")
            return "", f"template:{cfg['contentTemplate']['id']}"
        cfg = self.campaign.email_config or {}
        body = contact.data.get("Message") or contact.data.get("Body") or ""
        if not body and cfg.get("contentTemplate"):
            body = f"template:{cfg['contentTemplate']['id']}"
        return contact.data.get("Subject", ""), body

    @property
    def pending(self) -> bool:
        return bool(self.blocked) or any(self.queues.values())

    def step(self, t: datetime, summary: RunSummary) -> None:
        if self.blocked:
            still = []
            for key, item in self.blocked:
                if item.blocked_until is not None and item.blocked_until <= t:
                    heapq.heappush(self.queues.setdefault(key, []), item)
                else:
                    still.append((key, item))
            self.blocked = still
        heads = [
            (queue[0].order, key)
            for key, queue in self.queues.items()
            if queue and self.windows.is_open(key, t)
        ]
        heapq.heapify(heads)
        budget = self.campaign.messages_per_minute
        gap = 60.0 / budget
        sent = 0
        while heads and sent < budget:
            _, key = heapq.heappop(heads)
            queue = self.queues[key]
            item = heapq.heappop(queue)
            self._send(item, t + timedelta(seconds=round(sent * gap, 3)), summary)
            sent += 1
            if queue:
                heapq.heappush(heads, (queue[0].order, key))
        if not self.campaign.always_running and not self.pending:
            self.campaign.status = "complete"

    def _send(self, item: _Item, at: datetime, summary: RunSummary) -> None:
        contact, campaign = item.contact, self.campaign
        subject, body = self.message_for(contact)
        common = {
            "to": item.address,
            "outcome_key": contact.id,
            "at": at,
            "source": "campaign",
            "contact_id": contact.id,
            "contact_list_id": self.cl.id,
            "campaign_id": campaign.id,
        }
        if campaign.sms_config is not None:
            outcome, _ = self.store.send_sms(
                sender=campaign.sender_number or "", body=body, **common
            )
            evaluations, message_type = contact.sms_evaluations, "Sms"
        else:
            from_address = (campaign.email_config or {}).get("fromAddress") or {}
            sender = f"{from_address.get('localPart', '')}@{from_address['domain']['id']}"
            outcome = self.store.send_email(sender=sender, subject=subject, body=body, **common)
            evaluations, message_type = contact.email_evaluations, "Email"
        evaluations[item.column] = {
            "contactColumn": item.column,
            "contactAddress": item.address,
            "messageType": message_type,
            "wrapupCodeId": WRAPUP_CODES[outcome.name],
            "timestamp": iso(at),
        }
        campaign.attempted.add(contact.id)
        summary.sent += 1
        if outcome.delivered:
            summary.delivered += 1
        else:
            summary.failed += 1

    def finish(self, last_minute: datetime | None) -> dict[str, str]:
        reasons = dict(self.reasons)
        for _, item in self.blocked:
            reasons[item.contact.id] = "dnc"
        for key, queue in self.queues.items():
            if queue and (last_minute is None or not self.windows.is_open(key, last_minute)):
                for item in queue:
                    reasons[item.contact.id] = "outside_contactable_time"
        return reasons


def run(store: Store, until: datetime) -> RunSummary:
    """Advance ``store.now`` to ``until`` and let running campaigns send (see module doc)."""
    summary = RunSummary()
    runs = [_CampaignRun(store, c) for c in store.campaigns.values() if c.status == "on"]
    t = store.now
    last: datetime | None = None
    while t < until:
        active = [r for r in runs if r.campaign.status == "on" and r.pending]
        if not active:
            for r in runs:
                if r.campaign.status == "on" and not r.campaign.always_running:
                    r.campaign.status = "complete"
            break
        for r in active:
            r.step(t, summary)
        last = t
        t += MINUTE
    for r in runs:
        reasons = r.finish(last)
        r.campaign.skipped = reasons
        summary.skipped.update(reasons.values())
    store.now = until
    return summary
