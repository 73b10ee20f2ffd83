"""The running sandbox: store, tokens, faults and counters behind one lock.

Contract: one :class:`Sandbox` per app (``app.state.sandbox``).  ``store.lock`` guards all of
it, including the fault RNG, so the n-th API request always meets the same fault draw for a
given seed.  ``reset()`` wipes the org (entities, ledger, carrier records, clock, counters) and
re-seeds the faults; configuration and issued tokens survive (their use counts restart).
"""

from __future__ import annotations

import random
import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from genesys_sandbox.auth import TokenRegistry
from genesys_sandbox.config import Faults, SandboxConfig
from genesys_sandbox.store import Store

__all__ = ["Sandbox", "Stats"]


@dataclass
class Stats:
    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    injected_429: int = 0
    injected_5xx: int = 0
    injected_drops: int = 0
    rate_limit_rejections: int = 0
    expired_token_rejections: int = 0
    tokens_issued: int = 0
    signed_downloads: int = 0
    signed_download_expired: int = 0
    signed_download_bad_signature: int = 0
    signed_download_with_authorization: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "injected_429": self.injected_429,
            "injected_5xx": self.injected_5xx,
            "injected_drops": self.injected_drops,
            "rate_limit_rejections": self.rate_limit_rejections,
            "expired_token_rejections": self.expired_token_rejections,
            "tokens_issued": self.tokens_issued,
            "signed_downloads": self.signed_downloads,
            "signed_download_expired": self.signed_download_expired,
            "signed_download_bad_signature": self.signed_download_bad_signature,
            "signed_download_with_authorization": self.signed_download_with_authorization,
        }


class Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = Store(config)
        self.tokens = TokenRegistry(config.monotonic)
        self.stats = Stats()
        self.faults = config.faults
        self.rng = random.Random(self.faults.seed)
        self.signing_key = secrets.token_bytes(32)

    @property
    def lock(self) -> Any:
        return self.store.lock

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        self.rng = random.Random(faults.seed)

    def reset(self) -> None:
        self.store.reset()
        self.stats = Stats()
        self.tokens.reset_usage()
        self.rng = random.Random(self.faults.seed)
