"""Builders of small canonical input frames with unique ids, for tests."""

from __future__ import annotations

import itertools
from typing import Any

import polars as pl

from tasks.extract import Extracted, canonicalize
from tasks.settings import CANONICAL_COLUMNS

_ids = itertools.count(1)


def unique_id(prefix: str) -> str:
    return f"{prefix}-{next(_ids):06d}"


def customer(**values: Any) -> dict[str, Any]:
    row = {
        "customer_id": unique_id("C"),
        "full_name": "Ana Silva",
        "phone": "+1 212 555 0143",
        "email": "Ana.Silva@Example.com",
        "country": "US",
        "postal_code": "10001",
        "preferred_timezone": "America/New_York",
        "locale": "en_US",
        "preferred_channel": None,
        "updated_at": "2026-11-01T00:00:00Z",
    }
    return row | values


def invoice(customer_id: str, **values: Any) -> dict[str, Any]:
    row = {
        "invoice_id": unique_id("INV"),
        "customer_id": customer_id,
        "amount_due": "120.00",
        "currency": "USD",
        "due_date": "2026-11-24",
        "status": "open",
        "paid_at": None,
        "updated_at": "2026-11-01T00:00:00Z",
    }
    return row | values


def consent(customer_id: str, channel: str, status: str = "opt_in", **values: Any) -> dict:
    row = {
        "customer_id": customer_id,
        "channel": channel,
        "status": status,
        "source": "web_form",
        "occurred_at": "2026-01-01T00:00:00Z",
    }
    return row | values


def contact(
    customer_id: str, attempted_at: str, channel: str = "sms", **values: Any
) -> dict[str, Any]:
    row = {
        "customer_id": customer_id,
        "channel": channel,
        "attempted_at": attempted_at,
        "outcome": "delivered",
        "invoice_id": None,
    }
    return row | values


def frame(name: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    columns = CANONICAL_COLUMNS[name]
    data = {c: [r.get(c) for r in rows] for c in columns}
    return pl.DataFrame(data, schema=dict.fromkeys(columns, pl.String))


def extracted(
    customers: list[dict[str, Any]],
    invoices: list[dict[str, Any]],
    consent_events: list[dict[str, Any]] = (),  # type: ignore[assignment]
    contact_history: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> Extracted:
    raw = {
        "customers": frame("customers", customers),
        "invoices": frame("invoices", invoices),
        "consent_events": frame("consent_events", list(consent_events)),
        "contact_history": frame("contact_history", list(contact_history)),
    }
    return Extracted({n: canonicalize(f, n, {}) for n, f in raw.items()})
