"""Pure parts of the alerts: signatures, event parsing, decisions, rendering (issue 12)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import polars as pl
import pytest

from tasks.alerts import (
    WebhookRejected,
    decide_alerts,
    directory_from_frames,
    parse_event,
    render_alerts,
    sign,
    twilio_signature,
    verify_signature,
    verify_twilio,
)
from tasks.render import load_templates
from tasks.settings import AlertSettings, CadenceSettings, RenderSettings

NOW = datetime(2026, 11, 23, 15, 0)  # 10:00 in New York


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"a": 1}'
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("k", 1700000000, body) == "v1=" + expected


@pytest.mark.parametrize(
    ("offset", "signature", "code"),
    [
        (0, None, "signature_missing"),
        (301, "ok", "timestamp_outside_tolerance"),
        (-301, "ok", "timestamp_outside_tolerance"),
        (0, "v1=deadbeef", "signature_invalid"),
        (0, "v2=ok", "signature_invalid"),
    ],
)
def test_signature_rejections(offset: int, signature: str | None, code: str) -> None:
    ts = int(NOW.replace(tzinfo=UTC).timestamp()) - offset
    body = b"{}"
    if signature == "ok":
        signature = sign("s", ts, body)
    elif signature == "v2=ok":
        signature = sign("s", ts, body).replace("v1=", "v2=")
    with pytest.raises(WebhookRejected) as caught:
        verify_signature(
            "s", timestamp=str(ts), signature=signature, body=body, now=NOW, tolerance_seconds=300
        )
    assert caught.value.code == code


def test_signature_accepts_within_tolerance_and_rotated_secrets() -> None:
    ts = int(NOW.replace(tzinfo=UTC).timestamp()) - 300
    both = f"v1=0000,{sign('s', ts, b'x')}"
    verify_signature(
        "s", timestamp=str(ts), signature=both, body=b"x", now=NOW, tolerance_seconds=300
    )


def test_twilio_published_vector() -> None:
    # twilio.com/docs/usage/security: token 12345, this URL and these five parameters
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert verify_twilio("12345", url, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert verify_twilio("12345", with_port, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not verify_twilio(
        "12345", url, params | {"Digits": "9999"}, "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    )
    assert not verify_twilio("12345", url, params, None)


def _body(**fields: object) -> bytes:
    base = {
        "event_id": "e1",
        "type": "payment_failed",
        "customer_id": "C1",
        "invoice_id": "I1",
        "amount": "1234.5",
        "currency": "usd",
        "occurred_at": "2026-11-23T10:00:00-05:00",
    }
    return json.dumps(base | fields).encode()


def test_parse_event_converts_amount_and_time() -> None:
    event = parse_event(_body())
    assert (event.amount_minor, event.currency) == (123450, "USD")
    assert event.occurred_at == datetime(2026, 11, 23, 15, 0)
    assert parse_event(_body(currency="JPY", amount="500")).amount_minor == 500


@pytest.mark.parametrize(
    "fields",
    [
        {"amount": 12.5},
        {"amount": "1e3"},
        {"amount": "1,000.00"},
        {"amount": "-5.00"},
        {"amount": "١٢٣"},
        {"amount": "NaN"},
        {"currency": "JPY", "amount": "1.5"},
        {"currency": "XXY"},
        {"occurred_at": "2026-11-23T10:00:00"},
        {"occurred_at": "yesterday"},
        {"event_id": "bad id with spaces"},
        {"event_id": ""},
        {"type": "payment_refunded"},
        {"customer_id": None},
    ],
)
def test_parse_event_rejects(fields: dict[str, object]) -> None:
    with pytest.raises(WebhookRejected) as caught:
        parse_event(_body(**fields))
    assert (caught.value.status, caught.value.code) == (422, "event_invalid")


def _directory(consent_rows: list[tuple[str, str, str]], **customer: object) -> object:
    people = pl.DataFrame(
        [
            {
                "customer_id": "C1",
                "full_name": "Ada Lovelace",
                "first_name": "Ada",
                "phone_e164": "+13175550001",
                "email": "ada@example.com",
                "time_zones": ["America/New_York"],
                "locale": "en_US",
                "preferred_channel": None,
            }
            | customer
        ],
        schema={
            "customer_id": pl.String,
            "full_name": pl.String,
            "first_name": pl.String,
            "phone_e164": pl.String,
            "email": pl.String,
            "time_zones": pl.List(pl.String),
            "locale": pl.String,
            "preferred_channel": pl.String,
        },
    )
    events = pl.DataFrame(
        [(c, ch, s, datetime(2026, 1, 1)) for c, ch, s in consent_rows],
        schema={
            "customer_id": pl.String,
            "channel": pl.String,
            "status": pl.String,
            "occurred_at": pl.Datetime("us"),
        },
        orient="row",
    )
    return directory_from_frames(people, events)


EVENTS = pl.DataFrame({"event_id": ["e1"], "customer_id": ["C1"]})
WINDOW = AlertSettings().window


@pytest.mark.parametrize(
    ("consent_rows", "customer", "channel", "reason"),
    [
        ([("C1", "sms", "opt_in")], {}, "sms", None),
        ([], {}, "email", None),  # no opt-in: no SMS, e-mail on "no opt-out"
        ([("C1", "sms", "opt_in")], {"preferred_channel": "email"}, "email", None),
        ([("C1", "sms", "opt_in"), ("C1", "whatsapp", "opt_out")], {}, None, "opted_out"),
        ([("C1", "sms", "opt_in")], {"phone_e164": None, "email": None}, None, "no_channel"),
        ([("C1", "sms", "opt_in")], {"time_zones": []}, "sms", "timezone_unknown"),
        (
            [("C1", "sms", "opt_in")],
            {"time_zones": ["Pacific/Kiritimati", "Pacific/Pago_Pago"]},
            "sms",
            "no_common_window",
        ),
    ],
)
def test_decide_alerts(
    consent_rows: list[tuple[str, str, str]],
    customer: dict,
    channel: str | None,
    reason: str | None,
) -> None:
    directory = _directory(consent_rows, **customer)
    row = decide_alerts(EVENTS, directory, now=NOW, window=WINDOW, cadence=CadenceSettings()).row(
        0, named=True
    )
    assert (row["channel"], row["reason"]) == (channel, reason)


def test_unknown_customer_and_quiet_hours() -> None:
    directory = _directory([("C1", "sms", "opt_in")])
    unknown = pl.DataFrame({"event_id": ["e2"], "customer_id": ["C9"]})
    row = decide_alerts(unknown, directory, now=NOW, window=WINDOW, cadence=CadenceSettings())
    assert row["reason"].to_list() == ["customer_unknown"]
    night = datetime(2026, 11, 24, 3, 0)  # 22:00 in New York
    held = decide_alerts(EVENTS, directory, now=night, window=WINDOW, cadence=CadenceSettings())
    assert held["release_at_utc"].to_list() == [datetime(2026, 11, 24, 13, 0)]


def test_render_blocks_a_pan_in_the_name() -> None:
    directory = _directory([("C1", "sms", "opt_in")], first_name="4111 1111 1111 1111")
    decided = decide_alerts(EVENTS, directory, now=NOW, window=WINDOW, cadence=CadenceSettings())
    events = EVENTS.with_columns(
        pl.lit("payment_received").alias("kind"),
        pl.lit(1250).alias("amount_minor"),
        pl.lit("USD").alias("currency"),
    )
    out = render_alerts(decided, events, load_templates(), RenderSettings())
    assert out["reason"].to_list() == ["pci_pan"]
    assert out["body"].to_list() == [None]
    ok = _directory([("C1", "sms", "opt_in")])
    decided = decide_alerts(EVENTS, ok, now=NOW, window=WINDOW, cadence=CadenceSettings())
    body = render_alerts(decided, events, load_templates(), RenderSettings())["body"][0]
    assert "$12.50" in body
    assert "Ada" in body
