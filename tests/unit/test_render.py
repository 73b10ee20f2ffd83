import re
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.errors import ConfigurationError
from tasks.render import load_templates, render_messages
from tasks.settings import RenderSettings

TEMPLATES = load_templates()


def _message(**values) -> pl.DataFrame:
    row = {
        "message_key": "k1",
        "channel": "sms",
        "cadence_step": -1,
        "due_date": date(2026, 11, 24),
        "invoice_count": 1,
        "first_name": "Ana",
        "full_name": "Ana Silva",
        "locale": "en_US",
        "currencies": ["USD"],
        "amounts_minor": [12000],
    } | values
    return pl.DataFrame([row])


def _render(settings=None, **values) -> dict:
    out = render_messages(
        _message(**values),
        templates=TEMPLATES,
        settings=settings or RenderSettings(),
        new_token=lambda: "OPAQUE",
    )
    return out.row(0, named=True)


@pytest.mark.parametrize(
    ("values", "fragments"),
    [
        ({}, ["Hi Ana", "$120.00", "11/24/2026", "https://pay.example.com/r/OPAQUE", "Reply STOP"]),
        ({"locale": "fr_CA", "currencies": ["CAD"]}, ["120,00\xa0$"]),
        ({"locale": "en_IN", "currencies": ["INR"], "amounts_minor": [12345678]}, ["₹1,23,456.78"]),
        ({"locale": "de_DE", "currencies": ["EUR"]}, ["120,00\xa0€", "11/24/2026"]),
        ({"locale": "xx_nonsense"}, ["$120.00"]),
        ({"currencies": ["USD", "CAD"], "amounts_minor": [1000, 550]}, ["$10.00 + CA$5.50"]),
        ({"cadence_step": 3}, ["was due on 11/24/2026", "call +1 800 555 0100"]),
        ({"cadence_step": 0}, ["due today"]),
        ({"first_name": None, "full_name": None}, ["Hi customer"]),
    ],
    ids=[
        "en-us",
        "fr-ca-money",
        "en-in-grouping",
        "de-money-date-format-fixed",
        "unknown-locale-falls-back",
        "two-currencies",
        "overdue-template",
        "due-today-template",
        "no-name",
    ],
)
def test_typed_variables_are_formatted(values, fragments) -> None:
    body = _render(**values)["body"]
    for fragment in fragments:
        assert fragment in body


def test_payment_link_holds_no_customer_data() -> None:
    row = _render(first_name="Ana", amounts_minor=[98765])
    link = next(w for w in row["body"].split() if w.startswith("https://"))
    assert link == "https://pay.example.com/r/OPAQUE"
    assert "987" not in link
    assert "Ana" not in link


def test_existing_token_is_reused() -> None:
    out = render_messages(
        _message(),
        templates=TEMPLATES,
        settings=RenderSettings(),
        existing_tokens={"k1": "KEEP"},
        new_token=lambda: "NEW",
    )
    assert out["link_token"].to_list() == ["KEEP"]


def test_email_has_subject_and_no_sms_encoding() -> None:
    row = _render(channel="email")
    assert row["subject"] == "Example Utilities: $120.00 due on 11/24/2026"
    assert row["encoding"] is None
    assert row["segments"] is None


@pytest.mark.parametrize(
    ("name", "encoding", "status"),
    [
        ("Ana", "GSM-7", "ok"),
        ("José", "GSM-7", "ok"),
        ("राम", "UCS-2", "ok"),
        ("Zoé" + "x" * 400, "GSM-7", "sms_too_long"),
        ("Ana 4111 1111 1111 1111", "GSM-7", "pci_pan"),
    ],
    ids=["ascii", "gsm-accent", "devanagari-ucs2", "over-segment-limit", "pan-in-name"],
)
def test_sms_encoding_and_guards(name, encoding, status) -> None:
    row = _render(first_name=name)
    assert (row["encoding"], row["render_status"]) == (encoding, status)


def test_segment_limit_is_configurable() -> None:
    name = "Alexandria-Catherine Montgomery"
    assert _render(first_name=name)["segments"] == 2
    assert _render(RenderSettings(sms_max_segments=2), first_name=name)["render_status"] == "ok"
    assert (
        _render(RenderSettings(sms_max_segments=1), first_name=name)["render_status"]
        == "sms_too_long"
    )


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_name_renders_without_leftover_placeholders(name) -> None:
    row = _render(first_name=name)
    body = row["body"]
    assert row["render_status"] in {"ok", "sms_too_long", "pci_pan"}
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", body)  # no line breaks, no controls
    assert not re.search(r"[\u202a-\u202e\u2066-\u2069]", body)  # nothing reorders the rest
    if "{{" not in name:
        assert "{{" not in body


@pytest.mark.parametrize(
    "name",
    ["\u202eAna", "Ana\u202d", "\u2067Ana", "Ana\u2028Silva", "Ana\x85Silva", "\u202bAna\u202c"],
    ids=["rlo", "lro", "rli", "line-separator", "c1-next-line", "rle-pdf"],
)
def test_bidi_and_line_controls_in_a_name_never_reach_the_body(name) -> None:
    row = _render(first_name=name)
    body = row["body"]
    assert body.startswith("Example Utilities: Hi Ana"), body
    assert "$120.00 is due on 11/24/2026" in body
    assert row["encoding"] == "GSM-7"  # a stray control would have made it UCS-2 (70 a part)


def test_right_to_left_marks_in_a_name_are_kept() -> None:
    assert "Hi \u200fعلي," in _render(first_name="\u200fعلي")["body"]


def test_placeholder_in_customer_data_is_not_expanded() -> None:
    assert "{{Amount}}" in _render(first_name="{{Amount}}")["body"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"sms_upcoming.txt": "Hi {{Nope}}"}, "unknown variables"),
        ({"sms_upcoming.txt": "Hi {{CustomerName}"}, "malformed"),
        ({"email_upcoming.txt": "no subject line"}, "Subject:"),
        ({}, "templates missing"),
    ],
    ids=["unknown-variable", "malformed-placeholder", "email-without-subject", "missing-template"],
)
def test_bad_templates_are_refused(tmp_path: Path, files, message) -> None:
    bundled = {p.name: p.read_text() for p in Path("templates").glob("*.txt")}
    if not files:
        bundled.pop("sms_overdue.txt")
    for name, text in (bundled | files).items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigurationError, match=message):
        load_templates(tmp_path)
