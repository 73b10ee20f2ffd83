from datetime import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tasks.masking import mask_email, mask_phone, mask_text
from tasks.settings import GenesysSettings, Settings, WindowSettings, load_settings


@pytest.mark.parametrize(
    ("start", "end"),
    [(time(7, 59), time(16, 0)), (time(8, 0), time(21, 1)), (time(12, 0), time(9, 0))],
    ids=["starts-before-8", "ends-after-21", "start-after-end"],
)
def test_window_outside_legal_hours_is_refused(start, end) -> None:
    with pytest.raises(ValidationError):
        WindowSettings(start=start, end=end)


def test_widest_legal_window_is_accepted() -> None:
    assert WindowSettings(start=time(8, 0), end=time(21, 0)).end == time(21, 0)


def test_environment_then_toml_then_defaults(monkeypatch, tmp_path) -> None:
    toml = tmp_path / "reminders.toml"
    toml.write_text('[window]\nstart = "09:00:00"\nend = "17:00:00"\n[cadence]\nsteps = [-3, 5]\n')
    monkeypatch.setenv("REMINDERS_CONFIG", str(toml))
    monkeypatch.setenv("REMINDERS_WINDOW__END", "18:30:00")
    settings = load_settings()
    assert (settings.window.start, settings.window.end) == (time(9, 0), time(18, 30))
    assert settings.cadence.steps == [-3, 5]
    assert settings.cadence.max_attempts_per_invoice == 3


def test_secrets_never_render(monkeypatch) -> None:
    monkeypatch.setenv("REMINDERS_WAREHOUSE__URL", "postgresql://app:hunter2@db/wh")
    settings = Settings()
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.public_dict())
    assert settings.warehouse.url.get_secret_value().endswith("@db/wh")


def test_unknown_setting_is_an_error() -> None:
    with pytest.raises(ValidationError):
        Settings(windw={"start": "09:00"})


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        ("sending to +14165550123 now", "4165550123"),
        ("to (416) 555-0123 and +44 7400 123456", "555-0123"),
        ("user ana.silva@example.com bounced", "ana.silva"),
    ],
    ids=["e164", "national-and-international", "email"],
)
def test_mask_text_hides_addresses(text, leaked) -> None:
    assert leaked not in mask_text(text)


def test_mask_text_leaves_dates_and_counts() -> None:
    # A space-separated timestamp is one 14-digit run for the PAN guard (tests/unit/test_masking).
    text = "run 2026-11-23T06:00:00Z on 2026-11-23 planned 1000000 messages"
    assert mask_text(text) == text


@given(st.from_regex(r"\+[1-9][0-9]{9,13}", fullmatch=True))
def test_masked_phone_keeps_at_most_four_digits(phone) -> None:
    masked = mask_phone(phone)
    assert sum(c.isdigit() for c in masked) <= 4
    assert phone not in mask_text(f"x {phone} y")


def test_mask_email_shape() -> None:
    assert mask_email("ana.silva@example.com") == "a•••@e•••.com"


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8765",
        "http://127.3.4.5:8765/",
        "http://localhost:8765",
        "http://LOCALHOST",
        "http://[::1]:8765",
        "https://api.mypurecloud.com",
        "https://example.com",
    ],
)
def test_genesys_base_url_https_or_loopback_is_accepted(base_url) -> None:
    assert GenesysSettings(base_url=base_url).base_url == base_url


@pytest.mark.parametrize(
    "base_url",
    [
        "http://example.com",
        "http://api.mypurecloud.com",
        "http://localhost.evil.example",
        "http://127.0.0.1.nip.io",
        "http://128.0.0.1",
        "http://[::2]",
        "ftp://127.0.0.1",
        "127.0.0.1:8765",
        "https://user:pw@api.mypurecloud.com",
        "https://api.mypurecloud.com?x=1",
    ],
)
def test_genesys_base_url_that_could_leak_credentials_is_refused(base_url) -> None:
    with pytest.raises(ValidationError, match=r"genesys\.base_url"):
        GenesysSettings(base_url=base_url)


def test_plain_http_base_url_error_says_what_is_allowed(monkeypatch) -> None:
    monkeypatch.setenv("REMINDERS_GENESYS__BASE_URL", "http://example.com")
    with pytest.raises(ValidationError) as refused:
        Settings()
    message = str(refused.value)
    assert "https://" in message
    assert "loopback" in message


def test_empty_base_url_means_unset() -> None:
    assert GenesysSettings(base_url="", region="us-east-1").base_url is None
