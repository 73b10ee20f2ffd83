"""Alerts exactly once under SIGKILL: the service as a real process, killed at a failpoint.

``tests/e2e/alerts_child.py`` serves the alerts service (uvicorn, worker running) over a
DuckDB file against a sandbox served here. Armed with ``alerts.after_intent`` it dies by
SIGKILL after the send intent is committed and before the agentless request; with
``alerts.after_call`` after Genesys accepted the request and before the answer is recorded.
A restart (no failpoint) settles the in-flight alert by lookup: not found -> sent once then;
found -> recorded with its message id, not sent again. The sandbox ledger is the truth: each
event's SMS exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import httpx
import pytest

from genesys_sandbox import SandboxConfig, create_app
from genesys_sandbox.testing import serve
from tests.alerts_support import event_body, signed_headers

ROOT = Path(__file__).resolve().parents[2]
NUMBER = "+13175551000"  # the child's one customer


def _daytime_zone() -> str:
    for zone in (
        "Europe/London",
        "America/New_York",
        "America/Los_Angeles",
        "Asia/Tokyo",
        "Asia/Kolkata",
        "Australia/Sydney",
        "Pacific/Auckland",
        "Europe/Berlin",
    ):
        if 9 <= datetime.now(UTC).astimezone(ZoneInfo(zone)).hour < 20:
            return zone
    pytest.skip("no daytime zone found")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(warehouse: str, sandbox: str, zone: str, failpoint: str) -> tuple[subprocess.Popen, str]:
    port = _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMINDERS_")}
    env["REMINDERS_FAILPOINT"] = failpoint
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.alerts_child", warehouse, sandbox, str(port), zone],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/health", timeout=2).raise_for_status()
            return child, url
        except httpx.HTTPError:
            if child.poll() is not None or time.monotonic() > deadline:
                err = child.stderr.read() if child.stderr else b""
                raise RuntimeError(f"the alerts child did not start: {err!r}") from None
            time.sleep(0.1)


def _post(url: str, event_id: str, amount: str) -> int | None:
    body = event_body(event_id, invoice_id=f"I-{event_id}", amount=amount)
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        return httpx.post(
            f"{url}/events", content=body, headers=signed_headers(body, now)
        ).status_code
    except httpx.TransportError:
        return None  # killed before it could answer (the event was committed first)


def _wait_settled(url: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        health = httpx.get(f"{url}/health", timeout=5).json()
        alerts = health["alerts"]
        busy = any(alerts.get(s) for s in ("sending", "unknown", "ready", "held"))
        if not busy and not health["events"].get("received"):
            return alerts
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled: {health}")
        time.sleep(0.1)


def _sent(ledger: list[dict], amount: str) -> int:
    return sum(1 for m in ledger if m["to"] == NUMBER and f"${amount}" in m["body"])


@pytest.mark.parametrize(
    ("failpoint", "detail"),
    [("alerts.after_intent", "not found by lookup"), ("alerts.after_call", "settled by lookup")],
)
def test_sigkill_at_a_failpoint_then_restart_sends_once(
    tmp_path: Path, failpoint: str, detail: str
) -> None:
    zone = _daytime_zone()
    warehouse = f"duckdb:///{tmp_path / 'alerts.duckdb'}"
    config = SandboxConfig(clock_start=datetime.now(UTC).replace(tzinfo=None))
    with serve(create_app(config)) as sandbox, httpx.Client(base_url=sandbox) as admin:
        child, url = _start(warehouse, sandbox, zone, failpoint)
        try:
            _post(url, "evt-killed", "7.00")
            assert child.wait(timeout=30) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
        child, url = _start(warehouse, sandbox, zone, "")
        try:
            assert _post(url, "evt-killed", "7.00") == 409  # the billing retry: a replay
            alerts = _wait_settled(url)
            assert _post(url, "evt-after", "8.00") == 202
            alerts = _wait_settled(url)
            log = httpx.get(f"{url}/health", timeout=5).json()
        finally:
            child.terminate()
            child.wait(timeout=30)
        ledger = admin.get("/sandbox/ledger").json()["messages"]
    assert alerts == {"accepted": 2}, log
    assert _sent(ledger, "7.00") == 1
    assert _sent(ledger, "8.00") == 1
    with duckdb.connect(str(tmp_path / "alerts.duckdb"), read_only=True) as db:
        details = [
            r[0]
            for r in db.execute(
                "select detail from alert_log where alert_key = 'evt-killed' order by at_utc"
            ).fetchall()
        ]
    assert any(d.startswith(detail) for d in details), json.dumps(details)
