"""demo: the whole pipeline on generated sample data, against the bundled Genesys sandbox.

1. Generates about 1,000 messy customers (seeded) as CSV under ``<data_dir>/demo/sample``.
2. Starts the Genesys sandbox (``python -m genesys_sandbox``) on a free 127.0.0.1 port, as a
   separate process: product code never imports it.
3. Runs build-reminders at the as-of time into a fresh ``<data_dir>/demo/warehouse.duckdb``.
4. Walks 24 simulated hours: each hour push-waves marks the waves opening within the hour
   ready and adds the contacts whose slot has opened (never earlier) to the sandbox's
   messaging campaigns, then the sandbox's clock runs to the next hour and the campaigns send
   inside each contact's window. (Deployed, push-waves runs every 15 minutes; the demo steps
   hourly to stay quick, so a slot starting at :15, :30 or :45 is added at the next hour.)
5. Collects the Genesys outcomes (sent / failed / skipped / unknown; never "delivered": that
   is a carrier fact) back into the outbox and expires what was never attempted.
6. Reconciles (issue 9): the sandbox carrier's Twilio records, with four known discrepancies
   injected, are loaded as a carrier file and reconcile-daily runs as it would 72 hours later
   (attempts, delivery from matched carrier records, summary and chart).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from prefect import flow

from flows.alerts_demo import DEMO_ALERT_SECRETS, DEMO_ALERTS, run_alert_demo
from flows.build_reminders import build_reminders
from flows.collect_outcomes import collect_outcomes
from flows.common import flow_run_namer, masking_errors, parse_utc_instant, settings_with
from flows.push_waves import push_waves
from flows.reconcile import FINALITY, demo_reconcile
from tasks.sample_data import generate

__all__ = ["demo", "demo_overrides", "running_sandbox", "sandbox_secret"]

SANDBOX_CLIENT = ("sandbox-client", "sandbox-secret")
"""The bundled sandbox's built-in demo credentials (a local fake, not a secret)."""

DEMO_REQUESTS_PER_MINUTE = 6_000
"""The demo plays a whole day's hourly pushes in a few minutes, so it raises the request
budget on both sides together (the sandbox's per-token limit and the client's
``genesys.requests_per_minute``). A real org keeps Genesys' 300 per minute per token, the
setting's default; at that rate the demo's ~700 requests would spend over a minute waiting."""


def demo_overrides(folder: Path, sandbox_url: str | None = None) -> dict[str, Any]:
    """Settings overrides pointing the sources, the warehouse and Genesys into the demo."""
    sample = folder / "sample"
    overrides: dict[str, Any] = {
        "warehouse": {"url": f"duckdb:///{folder / 'warehouse.duckdb'}"},
        "sources": {
            name: {"kind": "csv", "path": str(sample / f"{name}.csv")}
            for name in ("customers", "invoices", "consent_events", "contact_history")
        },
    }
    if sandbox_url:
        overrides["genesys"] = {
            "base_url": sandbox_url,
            "client_id": SANDBOX_CLIENT[0],
            "requests_per_minute": DEMO_REQUESTS_PER_MINUTE,
        }
    return overrides


@contextmanager
def sandbox_secret() -> Iterator[None]:
    """The demo's secrets (the sandbox's client secret, the demo alert service's signing
    secrets) in this process's environment: flow parameters never carry a secret, not even a
    local fake's (overrides refuse it)."""
    values = {"REMINDERS_GENESYS__CLIENT_SECRET": SANDBOX_CLIENT[1]} | {
        f"REMINDERS_ALERTS__{key.upper()}": value
        for key, value in DEMO_ALERTS.items()
        if key in DEMO_ALERT_SECRETS
    }
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def running_sandbox(*args: str) -> Iterator[str]:
    """Start ``python -m genesys_sandbox`` on a free local port; yield its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "genesys_sandbox",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/sandbox/clock", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the Genesys sandbox did not start") from None
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@flow(name="demo", flow_run_name=flow_run_namer("demo", "as_of"))
@masking_errors
def demo(
    customers: int = 1000,
    as_of: str = "2026-11-23T06:00:00Z",
    seed: int = 7,
    hours: int = 24,
    reconcile: bool = True,
) -> dict[str, Any]:
    """Run the demo; returns the build result, each hourly push, and the outcomes."""
    settings = settings_with(None)
    folder = settings.data_dir / "demo"
    if folder.exists():
        shutil.rmtree(folder)
    at = parse_utc_instant(as_of)
    generate(customers, seed=seed, as_of=at.date()).write(folder / "sample", "csv")
    with (
        running_sandbox("--rate-limit", str(DEMO_REQUESTS_PER_MINUTE)) as sandbox,
        httpx.Client(base_url=sandbox, timeout=300) as admin,
        sandbox_secret(),
    ):
        admin.post("/sandbox/reset").raise_for_status()
        overrides = demo_overrides(folder, sandbox)
        built = build_reminders(as_of=at.isoformat(), overrides=overrides)
        pushes = []
        alerts: dict[str, Any] = {}
        overrides["alerts"] = {k: v for k, v in DEMO_ALERTS.items() if k not in DEMO_ALERT_SECRETS}
        for hour in range(hours):
            now = at + timedelta(hours=hour)
            pushes.append(push_waves(now=now.isoformat(), horizon_minutes=60, overrides=overrides))
            if hour == hours // 2:  # issue 12: the alerts service, a handful of events
                alerts = run_alert_demo(settings_with(overrides), now=now)
            until = (now + timedelta(hours=1)).isoformat() + "Z"
            admin.post("/sandbox/run", json={"until": until}).raise_for_status()
        outcomes = collect_outcomes(
            now=(at + timedelta(hours=hours)).isoformat(), overrides=overrides
        )
        snapshot = admin.get("/sandbox/ledger").json()
        ledger = dict(snapshot["counts"])
        # the campaigns' ledger (reminders); the alerts' agentless sends are counted apart
        agentless = [m for m in snapshot["messages"] if m["source"] == "agentless"]
        ledger["total"] -= len(agentless)
        ledger["distinct_contacts"] -= len({(m["channel"], m["to"], m["body"]) for m in agentless})
        ledger["agentless_alerts"] = len(agentless)
        # what Genesys rendered from each e-mail campaign's content template
        emails = [
            {k: m[k] for k in ("contact_id", "subject", "body")}
            for m in snapshot["messages"]
            if m["channel"] == "email" and m["source"] == "campaign"
        ]
        reconciled = None
        if reconcile:
            records = admin.get("/sandbox/carrier/twilio/messages").json()["messages"]
            end = at + timedelta(hours=hours)
            reconciled = demo_reconcile(
                folder,
                records,
                now=end + FINALITY,
                day=end.date(),
                days_back=(end.date() - at.date()).days,
                overrides=overrides,
            )
    return {
        "reconcile": reconciled,
        "build": built,
        "pushes": pushes,
        "outcomes": outcomes,
        "sandbox_ledger": ledger,
        "sandbox_emails": emails,
        "alerts": alerts,
        "warehouse": str(folder / "warehouse.duckdb"),
    }


if __name__ == "__main__":
    demo()
