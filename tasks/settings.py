"""One validated settings object for every flow.

Source order, first wins: keyword arguments > environment (``REMINDERS_`` prefix, ``__`` between
nested names, e.g. ``REMINDERS_WAREHOUSE__URL``) > the TOML file named by ``REMINDERS_CONFIG``
(default ``reminders.toml`` in the working directory, if present) > the defaults below.

The defaults run the demo as-is: sample CSVs under ``data/sample``, a DuckDB file warehouse under
``data/``. Settings are loaded once, in the flow entry point, and passed down; tasks never read
the environment. Secrets are ``SecretStr`` and are never rendered in logs or ``repr``.
"""

from __future__ import annotations

import codecs
import os
import re
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tasks.transport import require_https_or_loopback

__all__ = [
    "CANONICAL_COLUMNS",
    "AlertSettings",
    "CadenceSettings",
    "CalendarSettings",
    "GateSettings",
    "GenesysSettings",
    "ParsingSettings",
    "QualitySettings",
    "RenderSettings",
    "Settings",
    "SourceSpec",
    "SourcesSettings",
    "WarehouseSettings",
    "WindowSettings",
    "env_name",
    "load_settings",
    "missing_settings",
    "secret_override_paths",
    "secret_values",
]

Channel = Literal["sms", "email"]

LEGAL_EARLIEST = time(8, 0)
LEGAL_LATEST = time(21, 0)

CANONICAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": (
        "customer_id",
        "full_name",
        "first_name",
        "last_name",
        "phone",
        "email",
        "country",
        "postal_code",
        "preferred_timezone",
        "locale",
        "preferred_channel",
        "updated_at",
    ),
    "invoices": (
        "invoice_id",
        "customer_id",
        "amount_due",
        "currency",
        "due_date",
        "status",
        "paid_at",
        "updated_at",
    ),
    "consent_events": ("customer_id", "channel", "status", "source", "occurred_at"),
    "contact_history": ("customer_id", "channel", "attempted_at", "outcome", "invoice_id"),
}
"""Every canonical column per input. Optional columns may be absent from a source."""

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id", "phone", "email", "country"),
    "invoices": ("invoice_id", "customer_id", "amount_due", "currency", "due_date", "status"),
    "consent_events": ("customer_id", "channel", "status", "occurred_at"),
    "contact_history": ("customer_id", "channel", "attempted_at"),
}


class SourceSpec(BaseModel):
    """Where one canonical input comes from, and how its columns map onto the canonical names.

    ``columns`` maps canonical name -> the source's column name; unmapped canonical columns are
    looked up under their own name. Columns the source has beyond those are kept for templates.
    """

    kind: Literal["csv", "parquet", "sql"] = "csv"
    path: Path | None = None
    url: SecretStr | None = Field(default=None, description="SQLAlchemy URL (may hold a password)")
    table: str | None = None
    query: str | None = None
    columns: dict[str, str] = Field(default_factory=dict)
    optional: bool = False
    encoding: str = Field(
        default="utf-8",
        description="Python codec of a csv source (utf-8, latin-1, cp1252, ...); a utf-8 BOM "
        "is skipped. Bytes the codec cannot decode quarantine their row (encoding_invalid).",
    )

    @field_validator("encoding")
    @classmethod
    def _codec(cls, v: str) -> str:
        try:
            info = codecs.lookup(v)
        except LookupError:
            raise ValueError(f"{v!r} is not a Python codec name") from None
        if not getattr(info, "_is_text_encoding", True):
            raise ValueError(f"{v!r} is not a text encoding")
        return v

    @model_validator(mode="after")
    def _where(self) -> SourceSpec:
        if self.kind in ("csv", "parquet") and self.path is None:
            raise ValueError(f"a {self.kind} source needs a path")
        if self.kind == "sql" and (self.table is None) == (self.query is None):
            raise ValueError("a sql source needs exactly one of table or query")
        return self


def _sample(name: str, *, optional: bool = False) -> SourceSpec:
    return SourceSpec(kind="csv", path=Path("data/sample") / f"{name}.csv", optional=optional)


class SourcesSettings(BaseModel):
    customers: SourceSpec = Field(default_factory=lambda: _sample("customers"))
    invoices: SourceSpec = Field(default_factory=lambda: _sample("invoices"))
    consent_events: SourceSpec = Field(default_factory=lambda: _sample("consent_events"))
    contact_history: SourceSpec = Field(
        default_factory=lambda: _sample("contact_history", optional=True)
    )
    sql_url: SecretStr | None = Field(
        default=None,
        description="Default SQLAlchemy URL for sql sources that do not name their own.",
    )


class WarehouseSettings(BaseModel):
    url: SecretStr = SecretStr("duckdb:///data/warehouse.duckdb")
    url_block: str | None = Field(
        default=None,
        description="A Prefect Secret block holding the warehouse URL (wins over url).",
    )
    db_schema: str | None = Field(
        default=None, description="Schema to create and use (PostgreSQL or DuckDB)."
    )


class CadenceSettings(BaseModel):
    steps: list[int] = Field(
        default_factory=lambda: [-7, -1, 3, 7],
        description="Days relative to the due date: -7 is T-7 (a week before), 3 is T+3.",
    )
    max_attempts_per_invoice: int = Field(default=3, ge=1)
    frequency_cap_hours: int = Field(default=24, ge=0)
    channel_order: list[Channel] = Field(default_factory=lambda: ["sms", "email"])
    email_requires_opt_in: bool = False
    payable_statuses: list[str] = Field(default_factory=lambda: ["open", "partially_paid"])

    @field_validator("steps")
    @classmethod
    def _unique_steps(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v) or not v:
            raise ValueError("cadence steps must be a non-empty list of distinct day offsets")
        return sorted(v)


class WindowSettings(BaseModel):
    """Local send window in each recipient's zone, [start, end)."""

    start: time = time(8, 0)
    end: time = time(16, 0)
    slot_minutes: int = Field(default=60, ge=15, le=240)

    @model_validator(mode="after")
    def _legal(self) -> WindowSettings:
        if self.start < LEGAL_EARLIEST or self.end > LEGAL_LATEST:
            raise ValueError(
                f"send window {self.start:%H:%M}-{self.end:%H:%M} leaves the legal contact hours "
                f"{LEGAL_EARLIEST:%H:%M}-{LEGAL_LATEST:%H:%M} recipient-local time"
            )
        if self.start >= self.end:
            raise ValueError("send window start must be before its end")
        if self.start.minute % 15 or self.start.second or self.start.microsecond:
            raise ValueError(
                f"send window start {self.start:%H:%M:%S} must be a quarter hour (:00, :15, :30,"
                " :45): push-waves runs every 15 minutes and every slot start must fall on one"
            )
        if self.slot_minutes % 15:
            raise ValueError(
                f"slot_minutes {self.slot_minutes} must be a multiple of 15 (push-waves runs "
                "every 15 minutes)"
            )
        return self


class RenderSettings(BaseModel):
    templates_dir: Path | None = Field(
        default=None, description="Folder of *.txt templates; the bundled ones when unset."
    )
    payment_link_base: str = "https://pay.example.com/r/"
    company_name: str = "Example Utilities"
    support_phone: str = "+1 800 555 0100"
    date_format: str = "MM/dd/yyyy"
    default_locale: str = "en_US"
    sms_max_segments: int = Field(default=3, ge=1, le=10)

    @field_validator("payment_link_base")
    @classmethod
    def _https(cls, v: str) -> str:
        if not v.startswith("https://"):
            raise ValueError("payment_link_base must be an https:// URL")
        return v if v.endswith("/") else v + "/"


class GenesysSettings(BaseModel):
    """Where Genesys Cloud is and how the pipeline uses it.

    ``region`` (e.g. ``us-east-1``) picks the real API and login hosts; ``base_url`` overrides
    both (the bundled sandbox: ``http://127.0.0.1:8765``); it must be ``https`` unless its host
    is a loopback address (127.0.0.0/8, ::1, localhost). Credentials come from the
    environment (``REMINDERS_GENESYS__CLIENT_ID`` / ``__CLIENT_SECRET``) or a Prefect Secret
    block named by ``client_secret_block``; they have no default.
    """

    region: str | None = None
    base_url: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    client_secret_block: str | None = None
    requests_per_minute: int = Field(default=300, ge=1)
    max_attempts: int = Field(default=6, ge=1, le=20)
    timeout_seconds: float = Field(default=30.0, gt=0)
    sms_sender: str = "+13175550100"
    email_from_domain_id: str = "example.com"
    email_from_local_part: str = "billing"
    email_friendly_name: str = "Billing"
    messages_per_minute: int = Field(default=100, ge=1, le=10000)
    name_prefix: str = "reminders"
    push_batch_size: int = Field(default=1000, ge=1, le=1000)
    push_concurrency: int = Field(default=4, ge=1, le=16)
    push_waves_in_flight: int = Field(
        default=4,
        ge=1,
        le=16,
        description="Waves of a route pushed at once (each with push_concurrency calls in "
        "flight, all under the one rate limit), so a wave waiting out a 429 never idles the "
        "client.",
    )
    list_rollover_at: int = Field(
        default=900_000,
        ge=1,
        le=1_000_000,
        description="Contacts in a campaign's list at which the next contacts go to a new list "
        "(Genesys allows 1,000,000 per list).",
    )

    @field_validator("base_url")
    @classmethod
    def _transport(cls, v: str | None) -> str | None:
        return require_https_or_loopback(v, "genesys.base_url") if v else None


class ParsingSettings(BaseModel):
    """How strictly normalize reads text fields."""

    due_date_formats: list[str] = Field(
        default_factory=lambda: ["%Y-%m-%d"],
        description="strptime formats for due_date, tried in order; a value must match one "
        "exactly (it round-trips: 2026-3-1 and 26-11-24 do not match %Y-%m-%d).",
    )
    max_amount: Decimal = Field(
        default=Decimal(1_000_000), gt=0, description="Largest amount_due, in major units."
    )
    max_field_length: int = Field(
        default=1000, ge=1, description="Longest text (characters) of any canonical cell."
    )

    @field_validator("due_date_formats")
    @classmethod
    def _formats(cls, v: list[str]) -> list[str]:
        if not v or any("%" not in fmt for fmt in v):
            raise ValueError("due_date_formats must be a non-empty list of strptime formats")
        return v


class GateSettings(BaseModel):
    """Table-level gates (``data_quality.gates``): Great Expectations suites per input and on
    the plan. ``thresholds`` overrides a rule's default threshold by rule id."""

    enabled: bool = True
    data_docs: bool = Field(
        default=True, description="Build a GX Data Docs site per run under data_dir/data_docs/"
    )
    thresholds: dict[str, float] = Field(default_factory=dict)

    @field_validator("thresholds")
    @classmethod
    def _known(cls, v: dict[str, float]) -> dict[str, float]:
        from data_quality.gates import GATE_DEFAULTS

        unknown = sorted(set(v) - set(GATE_DEFAULTS))
        if unknown:
            raise ValueError(
                f"unknown gate rule(s) {unknown}; rules with a threshold: {sorted(GATE_DEFAULTS)}"
            )
        bad = sorted(k for k, x in v.items() if not 0 <= x <= 1)
        if bad:
            raise ValueError(f"gate thresholds must be between 0 and 1: {bad}")
        return v

    def threshold(self, rule_id: str) -> float:
        from data_quality.gates import GATE_DEFAULTS

        return self.thresholds.get(rule_id, GATE_DEFAULTS[rule_id])


class CalendarSettings(BaseModel):
    """No-send days (``tasks.send_calendar``): holidays of the ``holidays`` package for the
    customers' countries and states / provinces, the user's CSV and ``no_send_days`` table,
    and quiet weekdays per country (``{"DE": ["sun"], "*": ["sun"]}``; ``*`` = every
    country). Without ``for_date`` the send date moves to the next allowed local date (at most
    ``horizon_days`` ahead); with it, a no-send ``for_date`` is excluded ``holiday`` /
    ``quiet_weekday`` (the step due that day is never moved)."""

    enabled: bool = True
    package_holidays: bool = True
    extra_csv: Path | None = None
    quiet_weekdays: dict[str, list[str]] = Field(default_factory=dict)
    horizon_days: int = Field(default=14, ge=0, le=60)

    @field_validator("quiet_weekdays")
    @classmethod
    def _weekdays(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        out = {}
        for country, days in v.items():
            spelled = [d.strip().lower()[:3] for d in days]
            bad = [d for d, s in zip(days, spelled, strict=True) if s not in names]
            if bad:
                raise ValueError(f"quiet_weekdays[{country!r}]: not weekdays {bad}; use {names}")
            out[country.strip().upper() if country != "*" else "*"] = spelled
        return out


class QualitySettings(BaseModel):
    max_quarantine_share: float = Field(default=0.25, ge=0, le=1)
    gates: GateSettings = Field(default_factory=GateSettings)


class AlertSettings(BaseModel):
    """Real-time payment alerts, inbound keywords and the consent round-trip (issue 12).

    ``signing_secret`` signs billing webhooks (HMAC-SHA256 over ``<timestamp>.<body>``),
    ``inbound_token`` is the static bearer token of the Architect data action (a Genesys web
    services credential cannot compute an HMAC), ``twilio_auth_token`` validates
    ``X-Twilio-Signature`` over ``public_base_url`` (the URL Twilio calls, not the proxy's).
    The transactional window is recipient-local and never leaves 08:00-21:00.
    """

    signing_secret: SecretStr | None = None
    inbound_token: SecretStr | None = None
    twilio_auth_token: SecretStr | None = None
    public_base_url: str | None = None
    tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    max_body_bytes: int = Field(default=16_384, ge=256, le=1_048_576)
    window: WindowSettings = Field(
        default_factory=lambda: WindowSettings(start=time(8, 0), end=time(21, 0))
    )
    poll_timeout_seconds: float = Field(default=60.0, gt=0)
    poll_interval_seconds: float = Field(default=2.0, gt=0)
    max_send_attempts: int = Field(default=3, ge=1, le=10)
    retry_after_seconds: float = Field(default=30.0, ge=0)
    worker_interval_seconds: float = Field(default=0.25, gt=0)
    send_concurrency: int = Field(default=16, ge=1, le=64)
    lookup_delay_seconds: float = Field(
        default=120.0,
        ge=0,
        description="An unknown send not found by lookup counts as not sent only this long "
        "after its intent (analytics detail data is not immediate); then it is resent once.",
    )
    duckdb_threads: int | None = Field(
        default=1,
        ge=1,
        description="DuckDB threads in the alerts service process (None: DuckDB's default, "
        "every core); its transactions are tiny, extra threads only burn CPU.",
    )
    lookup_margin_seconds: float = Field(
        default=120.0, ge=0, description="Clock margin around the lookup's interval."
    )
    custom_keywords: dict[str, str] = Field(
        default_factory=lambda: {"PAID": "payment_link", "CALL": "callback_request"},
        description="Inbound keyword -> action (payment_link | callback_request).",
    )
    stop_reply: str = (
        "{CompanyName}: you are unsubscribed and will receive no more messages. "
        "Reply START to resubscribe."
    )
    start_reply: str = "{CompanyName}: you are subscribed again. Reply STOP to opt out."
    help_reply: str = (
        "{CompanyName} billing alerts. Help: {SupportPhone}. Msg&data rates may apply. "
        "Up to 4 msgs/month. Reply STOP to opt out."
    )
    payment_link_reply: str = "{CompanyName}: pay securely at {PaymentLink}"
    callback_reply: str = "{CompanyName}: thank you, we will call you back."
    datatable_prefix: str = "reminders"
    crm_export_dir: Path | None = None
    crm_export_url: SecretStr | None = Field(
        default=None, description="SQLAlchemy URL of the CRM target (else a CSV file)."
    )

    @field_validator("custom_keywords")
    @classmethod
    def _actions(cls, v: dict[str, str]) -> dict[str, str]:
        known = {"payment_link", "callback_request"}
        bad = {k: a for k, a in v.items() if a not in known}
        if bad:
            raise ValueError(f"unknown keyword actions {bad}; known: {sorted(known)}")
        return v


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REMINDERS_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    data_dir: Path = Path("data")
    warehouse: WarehouseSettings = Field(default_factory=WarehouseSettings)
    sources: SourcesSettings = Field(default_factory=SourcesSettings)
    cadence: CadenceSettings = Field(default_factory=CadenceSettings)
    window: WindowSettings = Field(default_factory=WindowSettings)
    render: RenderSettings = Field(default_factory=RenderSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    calendar: CalendarSettings = Field(default_factory=CalendarSettings)
    parsing: ParsingSettings = Field(default_factory=ParsingSettings)
    genesys: GenesysSettings = Field(default_factory=GenesysSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("REMINDERS_CONFIG", "reminders.toml"))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )

    def public_dict(self) -> dict[str, Any]:
        """Settings as JSON-safe values with secrets masked, for runs.parameters."""
        return self.model_dump(mode="json")


def secret_values(model: BaseModel) -> list[str]:
    """Every ``SecretStr`` value in ``model`` (nested), and the password of every URL secret."""
    found: list[str] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = value.values() if isinstance(value, dict) else [value]
        for item in items:
            if isinstance(item, SecretStr):
                raw = item.get_secret_value()
                found.append(raw)
                if "://" in raw and "@" in raw:
                    userinfo = raw.split("://", 1)[1].split("@", 1)[0]
                    if ":" in userinfo:
                        found.append(userinfo.split(":", 1)[1])
            elif isinstance(item, BaseModel):
                found += secret_values(item)
    return [v for v in found if v]


_SECRET_KEY_WORDS = ("secret", "password", "passwd", "token", "api_key", "apikey", "credential")
_BLOCK_KEYS = frozenset({"client_secret_block", "url_block"})
_URL_WITH_PASSWORD = re.compile(r"[A-Za-z][\w+.-]*://[^\s/@:]*:[^\s/@]+@")


def secret_override_paths(overrides: Any, prefix: str = "") -> list[str]:
    """Dotted paths in ``overrides`` (flow parameters) that carry a secret: a key named like a
    secret (``client_secret``, ``*password*``, ``*token*`` ...; a ``*_block`` name is fine) or
    any string holding a URL with a password."""
    found: list[str] = []
    if isinstance(overrides, dict):
        for key, value in overrides.items():
            path = f"{prefix}{key}"
            name = str(key).lower()
            secretish = name not in _BLOCK_KEYS and any(w in name for w in _SECRET_KEY_WORDS)
            if secretish and value not in (None, ""):
                found.append(path)
                continue
            found += secret_override_paths(value, f"{path}.")
    elif isinstance(overrides, list | tuple):
        for i, value in enumerate(overrides):
            found += secret_override_paths(value, f"{prefix}{i}.")
    elif isinstance(overrides, str | SecretStr):
        text = overrides.get_secret_value() if isinstance(overrides, SecretStr) else overrides
        if _URL_WITH_PASSWORD.search(text):
            found.append(prefix.rstrip("."))
    return found


def env_name(path: str) -> str:
    """The environment variable of a dotted setting: ``genesys.client_id`` ->
    ``REMINDERS_GENESYS__CLIENT_ID``."""
    return "REMINDERS_" + "__".join(part.upper() for part in path.split("."))


def missing_settings(settings: Settings, needs: tuple[str, ...]) -> list[str]:
    """The settings among ``needs`` that are not set, as environment variable names (an
    alternative in parentheses). Known needs: ``genesys`` (client id, secret or secret block,
    region or base URL)."""
    missing: list[str] = []
    if "genesys" in needs:
        g = settings.genesys
        if not g.client_id:
            missing.append(env_name("genesys.client_id"))
        if g.client_secret is None and not g.client_secret_block:
            secret, block = (
                env_name("genesys.client_secret"),
                env_name("genesys.client_secret_block"),
            )
            missing.append(f"{secret} (or {block})")
        if not g.region and not g.base_url:
            missing.append(f"{env_name('genesys.region')} (or {env_name('genesys.base_url')})")
    return missing


def load_settings(**overrides: Any) -> Settings:
    """Load settings from environment and TOML file; ``overrides`` win over both. Every
    secret value is registered with :func:`tasks.masking.register_secret`."""
    from tasks.masking import register_secret

    settings = Settings(**overrides)
    for value in secret_values(settings):
        if "://" not in value:  # whole URLs are masked by their password
            register_secret(value)
    return settings
