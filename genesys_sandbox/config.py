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

__all__ = ["DEFAULT_CLIENT_ID", "DEFAULT_CLIENT_SECRET", "Faults", "SandboxConfig"]

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

    def __post_init__(self) -> None:
        if self.clock_start.tzinfo is not None:
            raise ValueError("clock_start must be a naive datetime meaning UTC")
        if self.token_ttl_seconds <= 0:
            raise ValueError("token_ttl_seconds must be > 0")
        if self.rate_limit_per_minute <= 0:
            raise ValueError("rate_limit_per_minute must be > 0")
        if self.download_url_ttl_seconds <= 0:
            raise ValueError("download_url_ttl_seconds must be > 0")
