"""Render: templates with typed variables, SMS segments, the PCI guard, payment links.

Templates are text files named ``<channel>_<kind>.txt`` where kind is ``upcoming`` (step < 0),
``due_today`` (step 0) or ``overdue`` (step > 0). E-mail templates begin with a
``Subject: ...`` line and a blank line. Placeholders are ``{{Name}}``; every name must be one of
:data:`VARIABLES`, which also fixes its type and so its formatting:

- ``Amount`` (money): the total due, formatted with babel for the customer's locale and the
  invoice currency (several currencies are joined with " + ").
- ``DueDate`` (date): the earliest due date of the message's invoices, ``render.date_format``.
- ``PaymentLink`` (url): ``render.payment_link_base`` + an opaque random token. The token is
  made once per message key and kept in the outbox, so a re-render reuses it; the URL holds no
  customer data and no amount.
- ``CustomerName``, ``CompanyName``, ``SupportPhone`` (text), ``InvoiceCount`` (integer).

A rendered message is blocked, with a reason, when its SMS needs more than
``render.sms_max_segments`` segments or more than 765 characters (Genesys' agentless limit)
(``sms_too_long``), or when its text holds a Luhn-valid 13-19 digit window, after folding
Unicode digits and ignoring up to two separators between digits (``pci_pan``, see
``tasks.pci``).

Every rendered message also keeps its typed variables' values, as formatted here, in
``template_values`` (a JSON object, name -> text): e-mail contacts carry them as contact-list
columns and Genesys renders the same template (a ``CampaignEmailTemplate`` response built by
:func:`response_texts`) with them, so the mail Genesys sends equals the stored body. Each value
must fit a contact cell (512 characters) or the message is ``too_long_for_genesys``; an SMS
travels pre-rendered in one cell, so its body must fit too.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import Enum
from importlib import resources
from pathlib import Path

import polars as pl
from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, get_currency_precision

from tasks.errors import ConfigurationError
from tasks.pci import contains_pan
from tasks.settings import RenderSettings
from tasks.sms import segment

__all__ = [
    "GENESYS_CELL_MAX_CHARS",
    "GENESYS_SMS_MAX_CHARS",
    "RENDER_REASONS",
    "VARIABLES",
    "Template",
    "TemplateSet",
    "VarType",
    "assemble_messages",
    "load_templates",
    "render_messages",
    "response_texts",
    "template_kind",
]

GENESYS_SMS_MAX_CHARS = 765
GENESYS_CELL_MAX_CHARS = 512
"""A contact-list cell holds at most 512 characters, and campaign messages travel in cells."""

RENDER_REASONS = {
    "sms_too_long": "the SMS needs more segments (or characters) than allowed",
    "pci_pan": "the rendered text contains a card-number-like digit run",
    "too_long_for_genesys": "a text that travels in a Genesys contact cell (the SMS body, an "
    "e-mail template value) exceeds its 512 characters",
}

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z][A-Za-z0-9]*)\s*\}\}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class VarType(Enum):
    TEXT = "text"
    MONEY = "money"
    DATE = "date"
    URL = "url"
    INTEGER = "integer"


VARIABLES: dict[str, VarType] = {
    "CustomerName": VarType.TEXT,
    "CompanyName": VarType.TEXT,
    "SupportPhone": VarType.TEXT,
    "Amount": VarType.MONEY,
    "DueDate": VarType.DATE,
    "PaymentLink": VarType.URL,
    "InvoiceCount": VarType.INTEGER,
}


@dataclass(frozen=True)
class Template:
    name: str
    subject: str | None
    body: str

    @property
    def variables(self) -> set[str]:
        return set(_PLACEHOLDER.findall(self.body)) | set(_PLACEHOLDER.findall(self.subject or ""))

    def fill(self, values: Mapping[str, str]) -> tuple[str | None, str]:
        def sub(text: str) -> str:
            return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)

        return (sub(self.subject) if self.subject is not None else None), sub(self.body)


@dataclass(frozen=True)
class TemplateSet:
    templates: dict[str, Template]

    def for_message(self, channel: str, step: int) -> Template:
        return self.templates[f"{channel}_{template_kind(step)}"]


def template_kind(step: int) -> str:
    if step < 0:
        return "upcoming"
    return "due_today" if step == 0 else "overdue"


def response_texts(template: Template) -> list[dict[str, str]]:
    """The ``texts`` of a Genesys response holding ``template`` (same ``{{Name}}``
    placeholders): a text/plain ``subject`` (e-mail) and a text/plain ``body``."""
    texts = []
    if template.subject is not None:
        texts.append({"content": template.subject, "contentType": "text/plain", "type": "subject"})
    texts.append({"content": template.body, "contentType": "text/plain", "type": "body"})
    return texts


def _parse_template(name: str, text: str) -> Template:
    subject = None
    body = text.strip("\n")
    if name.startswith("email_"):
        first, _, rest = body.partition("\n")
        if not first.startswith("Subject:"):
            raise ConfigurationError(f"template {name}: e-mail templates start with 'Subject:'")
        subject, body = first[len("Subject:") :].strip(), rest.strip("\n")
    template = Template(name, subject, body)
    unknown = template.variables - set(VARIABLES)
    if unknown:
        raise ConfigurationError(
            f"template {name}: unknown variables {sorted(unknown)}; known: {sorted(VARIABLES)}"
        )
    leftover = _PLACEHOLDER.sub("", body)
    if "{{" in leftover or "}}" in leftover:
        raise ConfigurationError(f"template {name}: malformed placeholder")
    return template


def load_templates(folder: Path | None = None) -> TemplateSet:
    """Load and validate every template; the bundled ones when ``folder`` is None."""
    root = resources.files("templates") if folder is None else folder
    found: dict[str, Template] = {}
    for entry in root.iterdir():
        if entry.name.endswith(".txt"):
            name = entry.name[: -len(".txt")]
            found[name] = _parse_template(name, entry.read_text(encoding="utf-8"))
    needed = {f"{c}_{k}" for c in ("sms", "email") for k in ("upcoming", "due_today", "overdue")}
    missing = needed - set(found)
    if missing:
        raise ConfigurationError(f"templates missing: {sorted(missing)}")
    return TemplateSet(found)


@functools.lru_cache(maxsize=512)
def _locale(tag: str | None, default: str) -> Locale:
    for candidate in (tag, default):
        if candidate:
            try:
                return Locale.parse(candidate.replace("-", "_"))
            except (UnknownLocaleError, ValueError):
                continue
    return Locale.parse("en_US")


@functools.lru_cache(maxsize=65536)
def format_money(minor: int, currency: str, locale: Locale) -> str:
    value = Decimal(minor).scaleb(-get_currency_precision(currency))
    return format_currency(value, currency, locale=locale)


def _clean_text(value: str | None) -> str:
    return _CONTROL.sub(" ", value or "").strip()


def assemble_messages(planned: pl.DataFrame) -> pl.DataFrame:
    """One row per message key from the planned decisions that share it.

    Amounts are summed per currency; the message's cadence step is that of its most overdue
    invoice; ``due_date`` is the earliest due date.
    """
    per_currency = planned.group_by("message_key", "currency").agg(
        pl.col("amount_due_minor").sum().alias("minor")
    )
    amounts = (
        per_currency.sort("message_key", "currency")
        .group_by("message_key", maintain_order=True)
        .agg(
            pl.col("currency").alias("currencies"),
            pl.col("minor").alias("amounts_minor"),
        )
    )
    return (
        planned.sort("message_key", "invoice_id")
        .group_by("message_key", maintain_order=True)
        .agg(
            pl.col("customer_id").first(),
            pl.col("channel").first(),
            pl.col("cadence_step").max(),
            pl.col("due_date").min(),
            pl.col("invoice_id").str.join(",").alias("invoice_ids"),
            pl.col("invoice_id").count().cast(pl.Int32).alias("invoice_count"),
            pl.col("time_zone").first(),
            pl.col("candidate_zones").first(),
            pl.col("display_zone").first(),
            pl.col("local_send_date").first(),
            pl.col("window_start_utc").first(),
            pl.col("window_end_utc").first(),
            pl.col("first_name").first(),
            pl.col("full_name").first(),
            pl.col("locale").first(),
            pl.when(pl.col("channel").first() == "sms")
            .then(pl.col("phone_e164").first())
            .otherwise(pl.col("email").first())
            .alias("to_address"),
        )
        .join(amounts, on="message_key", how="left")
        .with_columns(
            pl.col("amounts_minor").list.sum().alias("amount_total_minor"),
            pl.col("currencies").list.first().alias("currency"),
        )
    )


def render_messages(
    messages: pl.DataFrame,
    *,
    templates: TemplateSet,
    settings: RenderSettings,
    existing_tokens: Mapping[str, str] | None = None,
    new_token: Callable[[], str] = lambda: secrets.token_urlsafe(16),
) -> pl.DataFrame:
    """Render every message; adds template, subject, body, encoding, segments, units,
    link_token, template_values (JSON of the typed variables' formatted values),
    render_status (``ok`` or a :data:`RENDER_REASONS` code)."""
    existing = existing_tokens or {}
    out: dict[str, list[object]] = {
        k: []
        for k in (
            "template",
            "subject",
            "body",
            "encoding",
            "segments",
            "units",
            "link_token",
            "template_values",
            "render_status",
        )
    }
    columns = (
        "message_key",
        "channel",
        "cadence_step",
        "due_date",
        "invoice_count",
        "first_name",
        "full_name",
        "locale",
        "currencies",
        "amounts_minor",
    )
    for key, channel, step, due, count, first, full, tag, currencies, amounts in messages.select(
        columns
    ).iter_rows():
        locale = _locale(tag, settings.default_locale)
        token = existing.get(key) or new_token()
        values = {
            "CustomerName": _clean_text(first or full) or "customer",
            "CompanyName": settings.company_name,
            "SupportPhone": settings.support_phone,
            "Amount": " + ".join(
                format_money(m, c, locale) for c, m in zip(currencies, amounts, strict=True)
            ),
            "DueDate": format_date(due, format=settings.date_format, locale=locale)
            if isinstance(due, date)
            else "",
            "PaymentLink": settings.payment_link_base + token,
            "InvoiceCount": str(count),
        }
        template = templates.for_message(channel, step)
        subject, body = template.fill(values)
        status = "ok"
        encoding, segments, units = None, None, None
        if channel == "sms":
            parts = segment(body)
            encoding, segments, units = parts.encoding, parts.count, parts.units
            if parts.count > settings.sms_max_segments or len(body) > GENESYS_SMS_MAX_CHARS:
                status = "sms_too_long"
        in_cells = [body] if channel == "sms" else list(values.values())
        if status == "ok" and max(len(v) for v in in_cells) > GENESYS_CELL_MAX_CHARS:
            status = "too_long_for_genesys"
        if status == "ok" and (contains_pan(body) or (subject and contains_pan(subject))):
            status = "pci_pan"
        for name, value in (
            ("template", template.name),
            ("subject", subject),
            ("body", body),
            ("encoding", encoding),
            ("segments", segments),
            ("units", units),
            ("link_token", token),
            ("template_values", json.dumps(values, ensure_ascii=False, sort_keys=True)),
            ("render_status", status),
        ):
            out[name].append(value)
    rendered = pl.DataFrame(
        out,
        schema={
            "template": pl.String,
            "subject": pl.String,
            "body": pl.String,
            "encoding": pl.String,
            "segments": pl.Int32,
            "units": pl.Int32,
            "link_token": pl.String,
            "template_values": pl.String,
            "render_status": pl.String,
        },
    )
    return messages.hstack(rendered)
