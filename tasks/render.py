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
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from importlib import resources
from pathlib import Path

import polars as pl
import pyarrow as pa
from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import (
    format_currency,
    get_currency_precision,
    get_decimal_symbol,
    get_group_symbol,
)

from tasks.errors import ConfigurationError
from tasks.pci import contains_pan, fold_text
from tasks.settings import RenderSettings
from tasks.sms import GSM7_BASIC, GSM7_EXTENSION, segment

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
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""C0 and C1 controls and the line / paragraph separators: a space in customer text."""
_BIDI_CONTROL = re.compile(r"[\u202a-\u202e\u2066-\u2069]")
"""Bidi embeddings, overrides and isolates: dropped from customer text. One left open in a
name (a CRM value starting with U+202E) reverses the rest of the message on the handset, the
amount and the link included; the marks (LRM, RLM) stay, they reorder nothing after them."""
_NOT_BASIC_PATTERN = "[^" + "".join(sorted(re.escape(c) for c in GSM7_BASIC)) + "]"
_EXTENSION_PATTERN = "[" + "".join(sorted(re.escape(c) for c in GSM7_EXTENSION)) + "]"


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
    return _BIDI_CONTROL.sub("", _CONTROL.sub(" ", value or "")).strip()


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


def _money_parts(
    currency: str, locale: Locale
) -> tuple[str, str, str, str, int, tuple[int, int]] | None:
    """(prefix, suffix, group, decimal, digits, grouping) of babel's currency format, or None
    when the format is not "prefix + digit groups + decimal + suffix" (then babel formats each
    value). ``grouping`` is the pattern's (primary, secondary) group sizes: (3, 3) for
    1,234,567, (3, 2) for the Indian 12,34,567."""
    digits = get_currency_precision(currency)
    probe = 123456789 * 10**digits + (10**digits - 1 if digits else 0)
    text = format_money(probe, currency, locale)
    group, decimal = get_group_symbol(locale), get_decimal_symbol(locale)
    pattern = locale.currency_formats.get("standard")
    grouping = tuple(getattr(pattern, "grouping", (3, 3)))
    if len(grouping) != 2 or min(grouping) < 1:
        return None
    sizes = (int(grouping[0]), int(grouping[1]))
    number = _group_text("123456789", group, sizes)
    if digits:
        number += decimal + "9" * digits
    if text.count(number) != 1:
        return None
    prefix, _, suffix = text.partition(number)
    return prefix, suffix, group, decimal, digits, sizes


def _group_text(integer: str, group: str, sizes: tuple[int, int]) -> str:
    """``integer`` (digits) with ``group`` between groups: the last ``sizes[0]`` digits, then
    groups of ``sizes[1]`` (what :func:`_grouped` computes per row)."""
    primary, secondary = sizes
    if len(integer) <= primary:
        return integer
    head, tail = integer[:-primary], integer[-primary:]
    chunks = [head[max(0, i - secondary) : i] for i in range(len(head), 0, -secondary)]
    return group.join([*reversed(chunks), tail])


def _grouped(integer: pl.Expr, group: str, sizes: tuple[int, int] = (3, 3)) -> pl.Expr:
    """The integer as text with ``group`` between groups of digits (vectorised): groups of
    three, or with ``sizes`` (primary, secondary) the last ``primary`` digits, then groups of
    ``secondary``."""
    if sizes == (3, 3):
        reversed_digits = integer.cast(pl.String).str.reverse()
        marked = reversed_digits.str.replace_all(r"([0-9]{3})", "${1}\x00")
        trimmed = marked.str.strip_suffix("\x00").str.reverse()
        return trimmed.str.replace_all("\x00", group, literal=True)
    primary, secondary = sizes
    text = integer.cast(pl.String)
    cut = (text.str.len_chars().cast(pl.Int64) - primary).clip(lower_bound=0)
    head, tail = text.str.slice(0, cut), text.str.slice(cut)
    marked = head.str.reverse().str.replace_all(f"([0-9]{{{secondary}}})", "${1}\x00")
    head = (
        marked.str.strip_suffix("\x00").str.reverse().str.replace_all("\x00", group, literal=True)
    )
    return pl.when(head == "").then(tail).otherwise(pl.concat_str([head, pl.lit(group), tail]))


def format_money_column(amounts: pl.DataFrame, default_locale: str) -> pl.Series:
    """``format_money`` for every row of ``amounts`` (columns minor, currency, locale tag),
    vectorised per distinct (currency, locale): babel is asked for each pair's pattern once and
    checked on probe values and the pair's extremes; a pair whose format does not fit the
    pattern is formatted by babel per distinct amount."""
    frame = amounts.select("minor", "currency", "tag").with_row_index("_m")
    pairs = frame.select("currency", "tag").unique(maintain_order=True)
    parts: list[pl.DataFrame] = []
    for currency, tag in pairs.iter_rows():
        locale = _locale(tag, default_locale)
        rows = frame.filter(
            (pl.col("currency") == currency)
            & (pl.col("tag").is_null() if tag is None else pl.col("tag") == tag)
        )
        shape = _money_parts(currency, locale)
        out: pl.Expr | None = None
        if shape is not None:
            prefix, suffix, group, decimal, digits, sizes = shape
            scale = 10**digits
            number = _grouped(pl.col("minor") // scale, group, sizes)
            if digits:
                fraction = (pl.col("minor") % scale).cast(pl.String).str.zfill(digits)
                number = pl.concat_str([number, pl.lit(decimal), fraction])
            out = pl.concat_str([pl.lit(prefix), number, pl.lit(suffix)])
            checks = sorted(
                {0, 5, 123, 1234 * scale, 12345678 * scale + 1}
                | {int(v) for v in (rows["minor"].min(), rows["minor"].max()) if v is not None}
            )
            probe = pl.DataFrame({"minor": checks}, schema={"minor": pl.Int64}).select(out)
            if probe.to_series().to_list() != [format_money(m, currency, locale) for m in checks]:
                out = None
        if out is not None:
            parts.append(rows.select("_m", out.alias("text")))
            continue
        distinct = rows["minor"].unique().to_list()
        mapping = {m: format_money(m, currency, locale) for m in distinct}
        parts.append(
            rows.select(
                "_m",
                pl.col("minor").replace_strict(mapping, return_dtype=pl.String).alias("text"),
            )
        )
    if not parts:
        return pl.Series("text", [], dtype=pl.String)
    return pl.concat(parts).sort("_m")["text"]


_PAN_CANDIDATE = r"[0-9](?:[^A-Za-z0-9]{0,2}[0-9]){12,}"
"""A run of 13+ ASCII digits with at most two non-alphanumerics between digits: a superset of
``tasks.pci``'s runs (its separators ``[\\W_]`` are all non-ASCII-alphanumeric)."""


def _may_hold_pan(texts: pl.Series) -> pl.Series:
    """The distinct ``texts`` that could hold a PAN: folded as ``tasks.pci.fold_text`` folds
    them (its per-character table, applied with one ``replace_many`` over the distinct
    non-ASCII characters), then matched against :data:`_PAN_CANDIDATE`."""
    texts = texts.drop_nulls().unique()
    odd = (
        texts.str.extract_all(r"[^\x00-\x7f]")
        .explode(empty_as_null=True)
        .drop_nulls()
        .unique()
        .to_list()
    )
    folded = texts
    if odd:
        folded = texts.str.replace_many(odd, [fold_text(c) for c in odd])
    return texts.filter(folded.str.contains(_PAN_CANDIDATE))


def _template_expr(text: str) -> pl.Expr:
    """A template's text as one concat_str of its literal pieces and variable columns."""
    pieces: list[pl.Expr] = []
    at = 0
    for match in _PLACEHOLDER.finditer(text):
        if match.start() > at:
            pieces.append(pl.lit(text[at : match.start()]))
        pieces.append(pl.col(f"_v_{match.group(1)}"))
        at = match.end()
    if at < len(text):
        pieces.append(pl.lit(text[at:]))
    return pl.concat_str(pieces) if pieces else pl.lit("")


def _new_tokens(count: int, new_token: Callable[[], str]) -> pl.Series:
    if count == 0:
        return pl.Series("link_token", [], dtype=pl.String)
    if new_token is not default_token:
        return pl.Series("link_token", [new_token() for _ in range(count)], dtype=pl.String)
    raw = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(16), count, [None, pa.py_buffer(secrets.token_bytes(16 * count))]
    )
    encoded = pl.Series("link_token", raw.cast(pa.binary())).bin.encode("base64")
    # secrets.token_urlsafe(16): URL-safe base64 of 16 random bytes, without padding.
    return (
        encoded.str.replace_all("+", "-", literal=True)
        .str.replace_all("/", "_", literal=True)
        .str.strip_chars_end("=")
    )


def default_token() -> str:
    """``secrets.token_urlsafe(16)``: the payment-link token of a new message key."""
    return secrets.token_urlsafe(16)


_RENDERED_SCHEMA = {
    "template": pl.String,
    "subject": pl.String,
    "body": pl.String,
    "encoding": pl.String,
    "segments": pl.Int32,
    "units": pl.Int32,
    "link_token": pl.String,
    "template_values": pl.String,
    "render_status": pl.String,
}


def _sms_counts(frame: pl.DataFrame, body: str) -> pl.DataFrame:
    """``frame`` with ``_enc``, ``_units`` and ``_segs``: encoding, units and a segment count
    where it is exact without splitting (else null). The character counts are computed once
    each, as columns, before the expressions that use them several times."""
    counted = frame.with_columns(
        pl.col(body).str.count_matches(_NOT_BASIC_PATTERN).alias("_odd"),
        pl.col(body).str.count_matches(_EXTENSION_PATTERN).alias("_ext"),
        pl.col(body).str.count_matches(r"[\U00010000-\U0010ffff]").alias("_astral"),
        pl.col(body).str.len_chars().alias("_len"),
    )
    return counted.with_columns(_sms_count_exprs()).drop("_odd", "_ext", "_astral", "_len")


def _sms_count_exprs() -> list[pl.Expr]:
    odd, ext, astral, length = (pl.col(c) for c in ("_odd", "_ext", "_astral", "_len"))
    gsm = odd == ext
    units = pl.when(gsm).then(length + ext).otherwise(length + astral)
    single = pl.when(gsm).then(160).otherwise(70)
    multi = pl.when(gsm).then(153).otherwise(67)
    wide = pl.when(gsm).then(ext).otherwise(astral)
    count = (
        pl.when(length == 0)
        .then(0)
        .when(units <= single)
        .then(1)
        .when(wide == 0)
        .then((units + multi - 1) // multi)
        .otherwise(None)  # a split that must not cut an ESC or surrogate pair: tasks.sms
    )
    return [
        pl.when(gsm).then(pl.lit("GSM-7")).otherwise(pl.lit("UCS-2")).alias("_enc"),
        units.cast(pl.Int32).alias("_units"),
        count.cast(pl.Int32).alias("_segs"),
    ]


def render_messages(
    messages: pl.DataFrame,
    *,
    templates: TemplateSet,
    settings: RenderSettings,
    existing_tokens: Mapping[str, str] | pl.DataFrame | None = None,
    new_token: Callable[[], str] = default_token,
) -> pl.DataFrame:
    """Render every message; adds template, subject, body, encoding, segments, units,
    link_token, template_values (JSON of the typed variables' formatted values), render_status
    (``ok`` or a :data:`RENDER_REASONS` code).

    Vectorised: templates become one concat_str per template, amounts are formatted per
    distinct (currency, locale) pattern, dates per distinct (date, locale); only the texts that
    might hold a card number (a 13+ digit run, or non-ASCII text) and SMS whose split must
    respect ESC / surrogate pairs are checked by Python. ``existing_tokens`` maps message key
    to the token already in the outbox (a dict or a frame of message_key, link_token).
    """
    if messages.height == 0:
        return messages.hstack(pl.DataFrame(schema=_RENDERED_SCHEMA))
    frame = messages.with_row_index("_r")
    if isinstance(existing_tokens, pl.DataFrame):
        known = existing_tokens.select("message_key", pl.col("link_token").cast(pl.String))
    else:
        existing = existing_tokens or {}
        known = pl.DataFrame(
            {"message_key": list(existing), "link_token": list(existing.values())},
            schema={"message_key": pl.String, "link_token": pl.String},
        )
    frame = frame.join(
        known.filter(pl.col("link_token").is_not_null() & (pl.col("link_token") != "")).unique(
            "message_key", keep="last"
        ),
        on="message_key",
        how="left",
    ).sort("_r")
    missing = frame["link_token"].is_null()
    fresh = _new_tokens(int(missing.sum()), new_token)
    if fresh.len():
        frame = frame.with_columns(
            pl.when(missing)
            .then(
                pl.lit(fresh).gather((missing.cast(pl.Int64).cum_sum() - 1).clip(0).cast(pl.UInt32))
            )
            .otherwise(pl.col("link_token"))
            .alias("link_token")
        )

    # Locales: one babel parse per distinct tag.
    tags = frame["locale"].unique().to_list()
    locale_of = {t: str(_locale(t, settings.default_locale)) for t in tags}
    frame = frame.with_columns(
        pl.col("locale").replace_strict(locale_of, return_dtype=pl.String).alias("_loc")
    )
    # Amount: every (message, currency) formatted, joined with " + " in currency order.
    per_currency = (
        frame.select("_r", "_loc", "currencies", "amounts_minor")
        .explode(["currencies", "amounts_minor"], empty_as_null=True)
        .rename({"currencies": "currency", "amounts_minor": "minor", "_loc": "tag"})
        .with_row_index("_o")
    )
    per_currency = per_currency.with_columns(
        format_money_column(per_currency, settings.default_locale).alias("_money")
    )
    amounts = (
        per_currency.filter(pl.col("currency").is_not_null())
        .sort("_o")
        .group_by("_r", maintain_order=True)
        .agg(pl.col("_money").str.join(" + ").alias("_v_Amount"))
    )
    frame = frame.join(amounts, on="_r", how="left").with_columns(pl.col("_v_Amount").fill_null(""))
    # DueDate: babel per distinct (date, locale).
    dates = frame.select("due_date", "_loc").unique().filter(pl.col("due_date").is_not_null())
    date_text = [
        format_date(d, format=settings.date_format, locale=Locale.parse(loc))
        for d, loc in dates.iter_rows()
    ]
    dates = dates.with_columns(pl.Series("_v_DueDate", date_text, dtype=pl.String))
    frame = frame.join(dates, on=["due_date", "_loc"], how="left", nulls_equal=True)
    name = (
        pl.when(pl.col("first_name").is_null() | (pl.col("first_name") == ""))
        .then(pl.col("full_name"))
        .otherwise(pl.col("first_name"))
        .fill_null("")
        .str.replace_all(_CONTROL.pattern, " ")
        .str.replace_all(_BIDI_CONTROL.pattern, "")
        .str.strip_chars()
    )
    kind = (
        pl.when(pl.col("cadence_step") < 0)
        .then(pl.lit("upcoming"))
        .when(pl.col("cadence_step") == 0)
        .then(pl.lit("due_today"))
        .otherwise(pl.lit("overdue"))
    )
    frame = frame.with_columns(
        pl.when(name == "").then(pl.lit("customer")).otherwise(name).alias("_v_CustomerName"),
        pl.lit(settings.company_name).alias("_v_CompanyName"),
        pl.lit(settings.support_phone).alias("_v_SupportPhone"),
        pl.col("_v_DueDate").fill_null(""),
        (pl.lit(settings.payment_link_base) + pl.col("link_token")).alias("_v_PaymentLink"),
        pl.col("invoice_count").cast(pl.String).fill_null("None").alias("_v_InvoiceCount"),
        pl.concat_str([pl.col("channel"), pl.lit("_"), kind]).alias("_template"),
    )
    unknown = set(frame["_template"].unique().to_list()) - set(templates.templates)
    if unknown:
        raise KeyError(sorted(unknown)[0])
    body: pl.Expr = pl.lit(None, pl.String)
    subject: pl.Expr = pl.lit(None, pl.String)
    for tname, template in templates.templates.items():
        hit = pl.col("_template") == tname
        body = pl.when(hit).then(_template_expr(template.body)).otherwise(body)
        if template.subject is not None:
            subject = pl.when(hit).then(_template_expr(template.subject)).otherwise(subject)
    frame = frame.with_columns(
        pl.col("_template").alias("template"), body.alias("body"), subject.alias("subject")
    )
    sms = pl.col("channel") == "sms"
    frame = _sms_counts(frame, "body")
    exact = frame.filter(sms & pl.col("_segs").is_null())
    if exact.height:
        counted = [segment(b).count for b in exact["body"].to_list()]
        frame = frame.update(
            exact.select("_r", pl.Series("_segs", counted, dtype=pl.Int32)), on="_r"
        )
    frame = frame.with_columns(
        pl.when(sms).then(pl.col("_enc")).alias("encoding"),
        pl.when(sms).then(pl.col("_segs")).alias("segments"),
        pl.when(sms).then(pl.col("_units")).alias("units"),
    )
    # PCI guard: Python only on the texts that could hold a PAN, once per distinct text.
    suspects = _may_hold_pan(pl.concat([frame["body"], frame["subject"]]))
    flagged = [t for t in suspects.to_list() if contains_pan(t)]
    pan = pl.col("body").is_in(flagged) | pl.col("subject").is_in(flagged).fill_null(False)
    too_long_sms = sms & (
        (pl.col("_segs") > settings.sms_max_segments)
        | (pl.col("body").str.len_chars() > GENESYS_SMS_MAX_CHARS)
    )
    # What travels in a contact cell: the SMS body, or each e-mail template value (the e-mail
    # body itself comes from the campaign's content template).
    too_long_cell = (
        pl.when(sms)
        .then(pl.col("body").str.len_chars())
        .otherwise(pl.max_horizontal(*[pl.col(f"_v_{v}").str.len_chars() for v in VARIABLES]))
        > GENESYS_CELL_MAX_CHARS
    )
    frame = frame.with_columns(
        pl.struct([pl.col(f"_v_{v}").alias(v) for v in sorted(VARIABLES)])
        .struct.json_encode()
        .alias("template_values")
    )
    status = (
        pl.when(too_long_sms)
        .then(pl.lit("sms_too_long"))
        .when(too_long_cell)
        .then(pl.lit("too_long_for_genesys"))
        .when(pan)
        .then(pl.lit("pci_pan"))
        .otherwise(pl.lit("ok"))
    )
    rendered = frame.sort("_r").select(
        *[
            (status if c == "render_status" else pl.col(c)).cast(t).alias(c)
            for c, t in _RENDERED_SCHEMA.items()
        ]
    )
    return messages.hstack(rendered)
