"""Configuration of the sandbox: credentials, limits, the virtual clock and injected faults.

Contract
--------
* The defaults give a fault-free sandbox with Genesys' documented limits: one OAuth client
  ``sandbox-client`` / ``sandbox-secret``, 24 h tokens, 300 requests per minute per token, one
  provisioned SMS sender number, and a virtual clock that starts at 2026-11-23T06:00:00 UTC.
* :class:`Faults` is replaceable at run time (``PUT /sandbox/faults``); every share is a
  probability in ``[0, 1]`` drawn from a :class:`random.Random` seeded with ``seed``, so a given
  sequence of requests meets the same faults every time.
* ``clock_start`` is a naive datetime meaning UTC.  ``monotonic`` is the real-time source used
  for token lifetimes, the per-token rate-limit window and the expiry of signed download URLs
  (tests may pass a fake one).
* Behaviour switches (:data:`SWITCHES`, BEHAVIOUR.md "Switches") are plain fields, settable at
  start, with ``--switch name=value`` on the CLI, and at run time through ``PUT /sandbox/config``
  (validated all-or-nothing by :meth:`SandboxConfig.set_switches`).
* Export downloads: ``/api/v2/downloads/{id}`` redirects to a signed URL on ``download_host``
  (default: ``localhost`` for an API on ``127.0.0.1``, ``127.0.0.1`` for ``localhost``, else
  ``files.<host>``), valid ``download_url_ttl_seconds``.
* ``record_requests``: record every ``/api/v2`` and ``/oauth`` request (``genesys_sandbox.wire``;
  served by ``GET /sandbox/requests``).  Off by default.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "SWITCHES",
    "Faults",
    "SandboxConfig",
]

DEFAULT_CLIENT_ID = "sandbox-client"
DEFAULT_CLIENT_SECRET = "sandbox-secret"


def _share(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")


@dataclass
class Faults:
    """Faults injected into ``/api/v2`` requests; all default to "no fault"."""

    rate_429: float = 0.0
    retry_after_seconds: int = 1
    rate_5xx: float = 0.0
    latency_ms: int = 0
    drop_after_commit_rate: float = 0.0
    expire_tokens_after_requests: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        _share("rate_429", self.rate_429)
        _share("rate_5xx", self.rate_5xx)
        _share("drop_after_commit_rate", self.drop_after_commit_rate)
        if self.rate_429 + self.rate_5xx > 1.0:
            raise ValueError("rate_429 + rate_5xx must not exceed 1")
        if self.retry_after_seconds < 0:
            raise ValueError("retry_after_seconds must be >= 0")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        if self.expire_tokens_after_requests is not None and self.expire_tokens_after_requests < 0:
            raise ValueError("expire_tokens_after_requests must be >= 0 or None")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Faults:
        """Build faults from JSON-like data; unknown keys or wrong types raise ``ValueError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            if isinstance(value, bool):
                raise ValueError(f"{name} must be a number")
            if name in ("rate_429", "rate_5xx", "drop_after_commit_rate"):
                if not isinstance(value, int | float):
                    raise ValueError(f"{name} must be a number")
                values[name] = float(value)
            elif name == "expire_tokens_after_requests" and value is None:
                values[name] = None
            else:
                if not isinstance(value, int):
                    raise ValueError(f"{name} must be an integer")
                values[name] = value
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Behaviour switches (see BEHAVIOUR.md "Switches"): field -> allowed values (None = numeric).
SWITCHES: dict[str, tuple[str, ...] | None] = {
    "outside_window": ("skip", "reschedule"),
    "readd_requeued": ("recontact", "keep_attempted"),
    "donotqueue_new": ("no_effect", "wait_for_recycle"),
    "recycle": ("on_exhaustion", "never"),
    "delete_in_use": ("keep", "delete"),
    "in_use_scope": ("any_campaign", "running_campaign"),
    "wrapup_codes": ("official", "legacy"),
    "carrier_failure_wrapup": ("sent", "failed"),
    "blank_message": ("wrapup", "skip"),
    "skip_wrapup": ("none", "code"),
    "email_without_template": ("refuse", "send_empty"),
    "template_rendering": ("substitute", "literal"),
    "rule_sets": ("evaluate", "refuse"),
    "campaign_sms_max_length": None,
    "unknown_wrapup_rate": None,
    "max_contacts_per_list": None,
    "max_contacts_per_org": None,
    "max_lists_per_org": None,
    "carrier_routing": ("twilio", "non_nanp_aws"),
    "carrier_billed_twice_rate": None,
    "carrier_phantom_rate": None,
    "carrier_price_change_rate": None,
    "carrier_segment_mismatch_rate": None,
    "carrier_pending_rate": None,
    "analytics_address_format": ("e164", "tel_uri"),
    "analytics_lag_seconds": None,
}
# Numeric switches that are shares in [0, 1] (set as floats).
SHARE_SWITCHES = frozenset(
    {
        "unknown_wrapup_rate",
        "carrier_billed_twice_rate",
        "carrier_phantom_rate",
        "carrier_price_change_rate",
        "carrier_segment_mismatch_rate",
        "carrier_pending_rate",
    }
)


@dataclass
class SandboxConfig:
    """Everything the sandbox needs at start; state (entities, ledger) is never configured."""

    clients: dict[str, str] = field(
        default_factory=lambda: {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET}
    )
    token_ttl_seconds: int = 86400
    rate_limit_per_minute: int = 300
    faults: Faults = field(default_factory=Faults)
    sms_sender_numbers: list[str] = field(default_factory=lambda: ["+13175550100"])
    delivery_seed: int = 0
    clock_start: datetime = datetime(2026, 11, 23, 6, 0, 0)
    download_url_ttl_seconds: int = 300
    download_host: str | None = None
    record_requests: bool = False
    monotonic: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    outside_window: str = "skip"
    readd_requeued: str = "recontact"
    donotqueue_new: str = "no_effect"
    recycle: str = "on_exhaustion"
    delete_in_use: str = "keep"
    in_use_scope: str = "any_campaign"
    wrapup_codes: str = "official"
    carrier_failure_wrapup: str = "sent"
    blank_message: str = "wrapup"
    skip_wrapup: str = "none"
    email_without_template: str = "refuse"
    template_rendering: str = "substitute"
    rule_sets: str = "evaluate"
    campaign_sms_max_length: int | None = 765
    unknown_wrapup_rate: float = 0.0
    max_contacts_per_list: int = 1_000_000
    max_contacts_per_org: int = 5_000_000
    max_lists_per_org: int = 1000
    carrier_routing: str = "twilio"
    carrier_billed_twice_rate: float = 0.0
    carrier_phantom_rate: float = 0.0
    carrier_price_change_rate: float = 0.0
    carrier_segment_mismatch_rate: float = 0.0
    carrier_pending_rate: float = 0.0
    analytics_address_format: str = "e164"
    analytics_lag_seconds: int = 0

    def switches(self) -> dict[str, Any]:
        """The behaviour switches as JSON (what ``GET /sandbox/config`` answers)."""
        return {name: getattr(self, name) for name in SWITCHES}

    def set_switches(self, data: Mapping[str, Any]) -> None:
        """Validate every given switch first, then apply them all (``PUT /sandbox/config``)."""
        unknown = sorted(set(data) - set(SWITCHES))
        if unknown:
            raise ValueError(f"unknown config fields: {', '.join(unknown)}")
        for name, value in data.items():
            _check_switch(name, value)
        for name, value in data.items():
            setattr(self, name, float(value) if name in SHARE_SWITCHES else value)

    def __post_init__(self) -> None:
        for name in SWITCHES:
            _check_switch(name, getattr(self, name))
        if self.clock_start.tzinfo is not None:
            raise ValueError("clock_start must be a naive datetime meaning UTC")
        if self.token_ttl_seconds <= 0:
            raise ValueError("token_ttl_seconds must be > 0")
        if self.rate_limit_per_minute <= 0:
            raise ValueError("rate_limit_per_minute must be > 0")
        if self.download_url_ttl_seconds <= 0:
            raise ValueError("download_url_ttl_seconds must be > 0")


def _check_switch(name: str, value: Any) -> None:
    allowed = SWITCHES[name]
    if allowed is not None:
        if value not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        return
    if name in SHARE_SWITCHES:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number")
        _share(name, float(value))
        return
    if name == "campaign_sms_max_length" and value is None:
        return
    if name == "analytics_lag_seconds":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0")
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{name} must be a positive integer"
            + (" or null" if name.startswith("campaign") else "")
        )
