"""The vectorised renderer against the per-row reference it replaced (issue 11 item 4).

``reference_render`` is the row-by-row implementation that was in tasks/render.py before
the renderer was vectorised (babel per amount, tasks.sms.segment and tasks.pci.contains_pan
per message); the vectorised one must give the same rows on hostile inputs.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
from collections.abc import Callable, Mapping
from datetime import date

import polars as pl
from babel.dates import format_date
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.pci import contains_pan
from tasks.render import (
    GENESYS_CELL_MAX_CHARS,
    GENESYS_SMS_MAX_CHARS,
    TemplateSet,
    _clean_text,
    _locale,
    format_money,
    load_templates,
    render_messages,
)
from tasks.settings import RenderSettings
from tasks.sms import segment

TEMPLATES = load_templates()
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{22}$")


def reference_render(
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


def _tokens() -> Callable[[], str]:
    counter = itertools.count()
    return lambda: f"T{next(counter):05d}"


def _frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "message_key": pl.String,
            "channel": pl.String,
            "cadence_step": pl.Int32,
            "due_date": pl.Date,
            "invoice_count": pl.Int32,
            "first_name": pl.String,
            "full_name": pl.String,
            "locale": pl.String,
            "currencies": pl.List(pl.String),
            "amounts_minor": pl.List(pl.Int64),
        },
    )


def _row(i: int, **values: object) -> dict:
    return {
        "message_key": f"k{i}",
        "channel": "sms" if i % 2 else "email",
        "cadence_step": (i % 5) - 2,
        "due_date": date(2026, 11, 1 + i % 28),
        "invoice_count": 1 + i % 3,
        "first_name": "Ana",
        "full_name": "Ana Silva",
        "locale": "en_US",
        "currencies": ["USD"],
        "amounts_minor": [1000 + 7919 * i],
    } | values


HOSTILE = [
    _row(1, locale="de_DE", currencies=["EUR"], amounts_minor=[123456789]),
    _row(2, locale="fr_FR", currencies=["EUR", "USD"], amounts_minor=[5, 99999999]),
    _row(3, locale="ja_JP", currencies=["JPY"], amounts_minor=[1234567]),
    _row(4, locale="en_IN", currencies=["INR"], amounts_minor=[1234567890]),
    _row(5, locale="ar_EG", currencies=["KWD"], amounts_minor=[1234567]),
    _row(6, locale="xx-nope", currencies=["CHF"], amounts_minor=[0]),
    _row(7, locale=None, first_name=None, full_name=None),
    _row(8, first_name="", full_name=" \x00Zoë\x1f "),
    _row(9, first_name="4111 1111 1111 1111"),  # a PAN in the name
    _row(10, first_name="Ana 4111-1111-1111-1111"),  # e-mail
    _row(11, first_name="😀" * 40),  # UCS-2 with surrogate pairs, several segments
    _row(13, first_name="{[~]}" * 30),  # GSM-7 extension characters, several segments
    _row(15, first_name="x" * 600),  # too long for SMS and for a Genesys cell
    _row(16, first_name="x" * 600),  # e-mail: too long for a Genesys cell
    _row(17, first_name="٤١١١١١١١١١١١١١١١"),  # Arabic-Indic digits fold to a PAN
    _row(19, locale="pt-BR", currencies=["BRL"], amounts_minor=[100]),
    _row(21, locale="es_ES", currencies=["EUR"], amounts_minor=[123456]),
    _row(23, locale="pl_PL", currencies=["PLN"], amounts_minor=[123456]),
]


def _compare(frame: pl.DataFrame, existing: Mapping[str, str] | None = None) -> None:
    render_settings = RenderSettings()
    want = reference_render(
        frame,
        templates=TEMPLATES,
        settings=render_settings,
        existing_tokens=existing,
        new_token=_tokens(),
    )
    got = render_messages(
        frame,
        templates=TEMPLATES,
        settings=render_settings,
        existing_tokens=existing,
        new_token=_tokens(),
    )
    assert got.columns == want.columns
    for a, b in zip(got.iter_rows(named=True), want.iter_rows(named=True), strict=True):
        # the same JSON object (the vectorised encoder spaces it differently)
        assert json.loads(a.pop("template_values")) == json.loads(b.pop("template_values"))
        assert a == b


def test_hostile_rows_render_as_the_reference() -> None:
    _compare(_frame(HOSTILE))


def test_existing_tokens_are_kept_and_new_ones_drawn_in_row_order() -> None:
    _compare(_frame(HOSTILE), existing={"k3": "KEEP3", "k9": "KEEP9"})


def test_default_tokens_are_url_safe_and_distinct() -> None:
    frame = _frame([_row(i) for i in range(500)])
    out = render_messages(frame, templates=TEMPLATES, settings=RenderSettings())
    tokens = out["link_token"].to_list()
    assert len(set(tokens)) == 500
    assert all(_TOKEN.match(t) for t in tokens)


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    names=st.lists(st.tuples(st.none() | _text, st.none() | _text), min_size=1, max_size=6),
    locale=st.sampled_from(["en_US", "de_DE", "fr_CH", "hi_IN", "nl", "sv_SE", "en-GB", "zz"]),
    currency=st.sampled_from(["USD", "EUR", "JPY", "BHD", "GBP", "CLF"]),
    minor=st.integers(min_value=0, max_value=10**13),
)
def test_any_text_renders_as_the_reference(
    names: list[tuple[str | None, str | None]], locale: str, currency: str, minor: int
) -> None:
    rows = [
        _row(
            i,
            first_name=f,
            full_name=n,
            locale=locale,
            currencies=[currency],
            amounts_minor=[minor + i],
        )
        for i, (f, n) in enumerate(names)
    ]
    _compare(_frame(rows))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=0, max_value=10**15), min_size=1, max_size=40))
def test_money_column_formats_as_babel_per_amount(amounts: list[int]) -> None:
    """Per (currency, locale), Indian grouping (12,34,567) included, every amount as babel."""
    from tasks.render import format_money_column

    pairs = [("INR", "en_IN"), ("NPR", "ne_NP"), ("USD", "hi_IN"), ("USD", "en_US")]
    pairs += [("EUR", "fr_FR"), ("JPY", "ja_JP"), ("KWD", "ar_KW")]
    values = [0, 5, 999, 1000, 99999, 100000, 1234567, *amounts]
    frame = pl.DataFrame(
        [(m, c, t) for c, t in pairs for m in values],
        schema={"minor": pl.Int64, "currency": pl.String, "tag": pl.String},
        orient="row",
    )
    got = format_money_column(frame, "en_US").to_list()
    want = [format_money(m, c, _locale(t, "en_US")) for m, c, t in frame.iter_rows()]
    assert got == want


def test_indian_grouping_takes_the_vectorised_path(monkeypatch) -> None:
    import tasks.render as render

    calls: list[int] = []
    real = render.format_money.__wrapped__

    def counted(minor: int, currency: str, locale: object) -> str:
        calls.append(minor)
        return real(minor, currency, locale)

    monkeypatch.setattr(render, "format_money", counted)
    amounts = list(range(0, 10**9, 9_876_543))
    frame = pl.DataFrame({"minor": amounts, "currency": "INR", "tag": "en_IN"})
    got = render.format_money_column(frame, "en_US")
    assert got[-1] == real(amounts[-1], "INR", _locale("en_IN", "en_US"))
    assert len(calls) < 12  # the probes only, not one babel call per amount
