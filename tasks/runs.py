"""Crash hygiene of the ``runs`` table: who runs a run, and finding the dead ones.

A run killed mid-way (SIGKILL, OOM, a lost machine) leaves its row ``running``. Every run
stamps its row with its runner (``host:pid:start``) and, before it starts, sweeps the table
(:func:`sweep_abandoned`): a ``running`` row is ``abandoned`` (``abandoned_at_utc`` = now, the
finder in ``error``) when its process is gone on this host, when ``is_over`` says its Prefect
flow run has ended (any host), or when it is older than ``MAX_RUN_AGE``. A run that is alive
is never touched.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["MAX_RUN_AGE", "runner_alive", "runner_token", "sweep_abandoned"]

MAX_RUN_AGE = timedelta(hours=12)
"""A run older than this is abandoned whatever its process: no flow runs this long."""


def _start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux; '' elsewhere): with the pid
    it names one process even when pids are reused."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def runner_token(pid: int | None = None) -> str:
    """``host:pid:start`` of this process (or ``pid`` on this host)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid)}"


def runner_alive(token: str | None) -> bool | None:
    """True / False when ``token`` is a process on this host that is alive / gone; None when
    it is on another host or unknown (cannot tell from here)."""
    if not token:
        return None
    parts = token.rsplit(":", 2)
    if len(parts) != 3:
        return None
    host, pid_text, ticks = parts
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    return not ticks or _start_ticks(pid) == ticks


def sweep_abandoned(
    conn: Connection,
    *,
    now: datetime,
    by_run_id: str,
    is_over: Callable[[str], bool | None] | None = None,
) -> list[str]:
    """Mark dead ``running`` rows ``abandoned``; returns their run ids. ``is_over(run_id)``
    answers for a run on another host (e.g. from its Prefect flow-run state); None = unknown."""
    rows = conn.execute(
        sa.text(
            "select run_id, runner, started_at_utc from runs"
            " where status = 'running' and run_id <> :r"
        ),
        {"r": by_run_id},
    ).all()
    dead: list[tuple[str, str]] = []
    for run_id, runner, started in rows:
        alive = runner_alive(runner)
        if alive is False:
            dead.append((run_id, f"process {runner} is gone"))
        elif alive is None and is_over is not None and is_over(run_id):
            dead.append((run_id, "its Prefect flow run has ended"))
        elif alive is not True and started is not None and now - started > MAX_RUN_AGE:
            dead.append((run_id, f"running for over {MAX_RUN_AGE}"))
    for run_id, why in dead:
        conn.execute(
            sa.text(
                "update runs set status = 'abandoned', abandoned_at_utc = :now, error = :e"
                " where run_id = :r and status = 'running'"
            ),
            {"now": now, "e": f"abandoned: {why}; found by run {by_run_id}", "r": run_id},
        )
    return [run_id for run_id, _ in dead]
