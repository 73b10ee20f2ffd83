"""Alerts for the on-call: a failed run, quarantine above threshold and a wave that missed its
window reach a Prefect Webhook block pointed at a local receiver."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import polars as pl
import pytest
import sqlalchemy as sa

from flows.alerts import find_alerts

pytestmark = pytest.mark.prefect


def test_find_alerts_on_small_frames() -> None:
    runs = pl.DataFrame(
        {
            "run_id": ["a", "b", "c"],
            "flow": ["build-reminders", "push-waves", "build-reminders"],
            "status": ["succeeded", "abandoned", "failed"],
            "error": [None, "abandoned: process gone", "QuarantineThresholdExceeded: invoices"],
            "invoices_in": [100, None, 100],
            "invoices_quarantined": [10, None, 40],
        }
    )
    missed = pl.DataFrame(
        {
            "wave_id": ["w1", "w1", "w2"],
            "channel": ["sms"] * 3,
            "time_zone": ["America/New_York"] * 3,
            "window_end_utc": [datetime(2026, 11, 23, 21)] * 3,
            "state": ["ready", "ready", "planned"],
        }
    )
    found = find_alerts(runs, missed, max_quarantine_share=0.25)
    kinds = [(a["kind"], a.get("run_id") or a.get("wave_id")) for a in found]
    assert kinds == [
        ("run_failed", "b"),
        ("run_failed", "c"),
        ("quarantine_above_threshold", "c"),  # 40 % > 25 %; run a's 10 % is not
        ("wave_missed_window", "w1"),
        ("wave_missed_window", "w2"),
    ]
    assert found[3]["messages"] == 2


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_alerts_flow_notifies_a_webhook_block(prefect_harness, tmp_path) -> None:
    from prefect.blocks.webhook import Webhook

    from flows.alerts import alerts
    from flows.common import open_warehouse
    from tasks.settings import load_settings

    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        Webhook(method="POST", url=url, allow_private_urls=True).save(
            "test-on-call", overwrite=True
        )
        overrides = {"warehouse": {"url": f"duckdb:///{tmp_path / 'w.duckdb'}"}}
        engine = open_warehouse(load_settings(**overrides))
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "insert into runs (run_id, flow, as_of_utc, started_at_utc, status, dry_run,"
                    " parameters, invoices_in, invoices_quarantined, error) values"
                    " ('r1', 'build-reminders', :t, :t, 'failed', false, '{}', 10, 9,"
                    " 'QuarantineThresholdExceeded: invoices: 9 of 10 rows quarantined')"
                ),
                {"t": datetime(2026, 11, 23, 6, 0)},
            )
        engine.dispose()
        result = alerts(
            now="2026-11-23T06:10:00Z",
            since_minutes=15,
            webhook_block="test-on-call",
            overrides=overrides,
        )
        quiet = alerts(
            now="2026-11-23T07:10:00Z", webhook_block="test-on-call", overrides=overrides
        )
    finally:
        server.shutdown()
    assert [a["kind"] for a in result["alerts"]] == ["run_failed", "quarantine_above_threshold"]
    assert quiet["alerts"] == []
    assert len(_Receiver.received) == 1  # the quiet period sent nothing
    payload = _Receiver.received[0]
    assert payload["alerts"] == result["alerts"]
    assert payload["alerts"][1]["source"] == "invoices"
