"""Failpoints: named places where a test can kill the process, to prove crash safety.

The entry point arms at most one failpoint from ``REMINDERS_FAILPOINT`` (``name`` or
``name:N`` for the N-th time the point is reached); nothing else reads it. Unarmed, a
failpoint costs one dictionary lookup. The process dies by SIGKILL: no ``finally`` blocks, no
flushes, no commits, exactly as a kill -9 or an OOM kill would.
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["POINTS", "arm", "failpoint", "hits"]

POINTS = (
    "push.before_token",
    "push.after_ready",
    "push.after_settle",
    "push.before_contact_list",
    "push.after_contact_list",
    "push.before_campaign_create",
    "push.after_campaign_create",
    "push.after_mark_pushing",
    "push.after_batch_sent",
    "push.after_batch_recorded",
    "push.between_waves",
    "push.before_campaign_start",
    "push.after_campaign_start",
    "push.after_remote_delete",
    "push.after_rollover_list",
    "push.after_rollover_switch",
    "alerts.after_intent",
    "alerts.after_call",
    "http.request",
    "http.response",
)
"""Every failpoint the code reaches; ``http.*`` count requests sent / answers received."""

_armed: dict[str, int] = {}
_hits: dict[str, int] = {}
_lock = threading.Lock()  # the push reaches its failpoints from several wave threads


def arm(spec: str | None) -> None:
    """Arm one failpoint, e.g. ``push.after_batch_sent:3``; None or '' disarms all."""
    _armed.clear()
    _hits.clear()
    if not spec:
        return
    name, _, count = spec.partition(":")
    if name not in POINTS:
        raise ValueError(f"unknown failpoint {name!r}; known: {', '.join(POINTS)}")
    _armed[name] = int(count or 1)


def failpoint(name: str) -> None:
    """Die here by SIGKILL if this point is armed and reached for the N-th time."""
    if name not in _armed:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        due = _hits[name] == _armed[name]
    if due:
        os.kill(os.getpid(), signal.SIGKILL)


def hits() -> dict[str, int]:
    return dict(_hits)
