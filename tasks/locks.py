"""Cross-process coordination on one host: a writer lock per warehouse and one Genesys rate
budget per OAuth client.

- :func:`host_lock` is an ``fcntl`` file lock: flows that write one warehouse take it for their
  whole run (see :func:`flows.common.warehouse_writer`, which also takes the Prefect global
  concurrency limit ``reminders-warehouse`` when it exists), so two overlapping runs wait for
  each other instead of failing on DuckDB's file lock or a unique constraint.
- :class:`SharedTokenBucket` keeps the state of a token bucket in a locked file named after
  the OAuth client, so every push and collect process of one client on this host draws from
  one budget of ``requests_per_minute``. Workers on several hosts need a shared folder
  (``data_dir``) or a Prefect rate limit instead.
The kernel drops an ``fcntl`` lock when its process dies, so a killed run never leaves it held.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["SharedTokenBucket", "host_lock", "lock_path", "share_rate_budget"]


def lock_path(folder: Path, kind: str, key: str) -> Path:
    """``<folder>/locks/<kind>-<sha256(key)[:16]>.lock`` (the key may be a URL with secrets)."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = folder / "locks" / f"{kind}-{digest}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def host_lock(path: Path, *, timeout: float = 3600.0, poll: float = 0.2) -> Iterator[float]:
    """Hold an exclusive lock on ``path``; yields the seconds waited. Raises ``TimeoutError``
    (transient) after ``timeout``."""
    started = time.monotonic()
    with open(path, "a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - started > timeout:
                    raise TimeoutError(f"lock {path.name} held for over {timeout:.0f} s") from None
                time.sleep(poll)
        try:
            yield time.monotonic() - started
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class SharedTokenBucket:
    """A token bucket whose state (tokens, time) lives in a locked file: one budget for every
    process that opens the same file. Same interface as :class:`tasks.genesys.TokenBucket`."""

    def __init__(
        self,
        path: Path,
        per_minute: int,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = path
        self.capacity = float(max(burst if burst is not None else per_minute // 10, 1))
        self.rate = max(per_minute, 1) / 60.0
        self.clock = clock
        self.sleep = sleep
        path.parent.mkdir(parents=True, exist_ok=True)

    def acquire(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                raw = os.read(fd, 256)
                now = self.clock()
                try:
                    state: dict[str, Any] = json.loads(raw) if raw else {}
                except ValueError:
                    state = {}
                tokens = float(state.get("tokens", self.capacity))
                updated = float(state.get("updated", now))
                tokens = min(self.capacity, tokens + max(0.0, now - updated) * self.rate)
                wait = 0.0
                if tokens >= 1:
                    tokens -= 1
                else:
                    wait = (1 - tokens) / self.rate
                os.lseek(fd, 0, os.SEEK_SET)
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps({"tokens": tokens, "updated": now}).encode())
            finally:
                os.close(fd)  # releases the lock
            if wait == 0.0:
                return
            self.sleep(wait)


def share_rate_budget(client: Any, folder: Path, client_id: str, per_minute: int) -> None:
    """Make ``client`` (a :class:`tasks.genesys.GenesysClient`) draw its requests from the
    host-wide budget of ``client_id``."""
    client._bucket = SharedTokenBucket(lock_path(folder, "genesys-rate", client_id), per_minute)
