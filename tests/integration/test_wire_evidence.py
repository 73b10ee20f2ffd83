"""Wire evidence: every request the product's Genesys client sends, checked against the SDK.

A recording sandbox (``SandboxConfig(record_requests=True)``) serves the product's push
(``tasks.push.push_waves_to_genesys``: contact lists, contacts, DNC list, callable time set,
campaigns, the opt-out re-check), the outcome collection (``tasks.outcomes``: export, download,
bulk lookup) and the whole demo flow (``flows.demo.demo`` on a few customers, 24 hours).  Every
recorded request is then matched to an operation of the official SDK (method + path template)
and its query parameters and JSON body are walked against the SDK's models
(``tests/wire.py``).  Run with ``-s`` for the summary.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from genesys_sandbox import SandboxConfig, create_app
from genesys_sandbox.testing import serve
from tasks.genesys import client_from_settings
from tasks.normalize import normalize
from tasks.outcomes import collect_outcomes_from_genesys
from tasks.push import push_waves_to_genesys
from tasks.settings import CadenceSettings, GenesysSettings, WindowSettings
from tasks.warehouse import make_engine, migrate, read_frame, write_frame
from tests import factories as f
from tests.integration.test_genesys_sandbox import NOW, _outbox
from tests.wire import WireReport, check_requests

RECORDING = SandboxConfig(record_requests=True, rate_limit_per_minute=100_000)


@contextmanager
def recording_sandbox() -> Iterator[str]:
    with serve(create_app(RECORDING)) as url:
        yield url


def _recorded(url: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{url}/sandbox/requests", timeout=60).json()
    assert answer["enabled"] is True
    return answer["requests"]


def _outbox_sms_and_email() -> pl.DataFrame:
    """12 SMS and 4 e-mail messages, customers C0..C15; C3 has opted out since planning."""
    email = {
        i: {
            "channel": "email",
            "to_address": f"c{i}@example.com",
            "subject": "Your invoice",
            "wave_id": "email:America/New_York:2026-11-23:01",
            "template": "email_upcoming",
            "template_values": json.dumps(
                {
                    "CustomerName": f"C{i}",
                    "Amount": "$1.00",
                    "DueDate": "11/24/2026",
                    "PaymentLink": "https://pay.example.com/r/t",
                    "InvoiceCount": "1",
                    "CompanyName": "Example",
                    "SupportPhone": "+1 800 555 0100",
                }
            ),
        }
        for i in range(12, 16)
    }
    frame = _outbox(16, email)
    return frame.with_columns(
        pl.format("C{}", pl.int_range(0, pl.len())).alias("customer_id"),
        pl.format("I{}", pl.int_range(0, pl.len())).alias("invoice_ids"),
    )


def _fresh() -> Any:
    customers = [
        f.customer(customer_id=f"C{i}", phone=f"+1 317 555 {i:04d}", email=f"c{i}@example.com")
        for i in range(16)
    ]
    invoices = [f.invoice(f"C{i}", invoice_id=f"I{i}") for i in range(16)]
    consent = [f.consent(f"C{i}", "sms") for i in range(16)]
    consent.append(f.consent("C3", "all", "opt_out", occurred_at="2026-11-23T05:00:00Z"))
    return normalize(f.extracted(customers, invoices, consent), as_of=NOW)


def _push_and_collect(tmp_path: Path) -> tuple[list[dict[str, Any]], dict[str, int]]:
    engine = make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    migrate(engine)
    with engine.begin() as conn:
        write_frame(conn, "messages", _outbox_sms_and_email())
    with recording_sandbox() as url:
        settings = GenesysSettings(base_url=url, client_id="sandbox-client", push_batch_size=5)
        with client_from_settings(settings, "sandbox-secret") as client:
            for run in ("p1", "p2"):  # the second push finds everything in place
                push_waves_to_genesys(
                    engine,
                    client,
                    genesys=settings,
                    window=WindowSettings(),
                    cadence=CadenceSettings(),
                    now=NOW,
                    horizon=timedelta(hours=1),
                    run_id=run,
                    fresh=_fresh(),
                )
            until = (NOW + timedelta(hours=4)).isoformat() + "Z"
            httpx.post(f"{url}/sandbox/run", json={"until": until}).raise_for_status()
            collect_outcomes_from_genesys(
                engine, client, settings, now=NOW + timedelta(hours=4), run_id="o"
            )
        requests = _recorded(url)
    with engine.connect() as conn:
        states = dict(read_frame(conn, "select state, count(*) from messages group by 1").rows())
    engine.dispose()
    return requests, states


def _demo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    import flows.demo

    with recording_sandbox() as url:

        @contextmanager
        def the_recording_sandbox(*args: str) -> Iterator[str]:
            yield url

        monkeypatch.setattr(flows.demo, "running_sandbox", the_recording_sandbox)
        monkeypatch.setenv("REMINDERS_DATA_DIR", str(tmp_path))
        result = flows.demo.demo(customers=60, as_of="2026-11-23T06:00:00Z", seed=3, hours=24)
        requests = _recorded(url)
    assert result["sandbox_ledger"]["total"] > 0, "the demo sent nothing: no evidence"
    return requests


@pytest.fixture(scope="module")
def push_evidence(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    requests, states = _push_and_collect(tmp_path_factory.mktemp("push"))
    assert states.get("cancelled") == 1  # C3's opt-out went through the re-check
    return requests


@pytest.fixture(scope="module")
def demo_evidence(
    prefect_harness: None, tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    with pytest.MonkeyPatch.context() as mp:
        return _demo(mp, tmp_path_factory.mktemp("demo"))


PUSH_AND_OUTCOME_OPERATIONS = (
    "POST /oauth/token",
    "GET /api/v2/outbound/contactlists",
    "POST /api/v2/outbound/contactlists",
    "POST /api/v2/outbound/contactlists/{contactListId}/contacts",
    "POST /api/v2/outbound/contactlists/{contactListId}/contacts/bulk",
    "GET /api/v2/outbound/dnclists",
    "POST /api/v2/outbound/dnclists",
    "GET /api/v2/outbound/messagingcampaigns",
    "POST /api/v2/outbound/messagingcampaigns",
    "GET /api/v2/outbound/messagingcampaigns/{messagingCampaignId}",
    "PUT /api/v2/outbound/messagingcampaigns/{messagingCampaignId}",
    "POST /api/v2/outbound/contactlists/{contactListId}/export",
    "GET /api/v2/outbound/contactlists/{contactListId}/export",
    "GET /api/v2/downloads/{downloadId}",
    "GET /api/v2/responsemanagement/libraries",
    "POST /api/v2/responsemanagement/libraries",
    "GET /api/v2/responsemanagement/responses",
    "POST /api/v2/responsemanagement/responses",
    "GET /api/v2/responsemanagement/responses/{responseId}",
)
"""What a push with an opt-out, SMS and e-mail (with its content template), then an outcome
collection must send."""


def _check(requests: list[dict[str, Any]], title: str) -> WireReport:
    report = check_requests(requests)
    print("\n" + report.summary(title))
    exercised = {name.split(" (")[0] for name in report.operations}
    missing = [op for op in PUSH_AND_OUTCOME_OPERATIONS if op not in exercised]
    assert missing == [], f"never sent, so not evidenced: {missing}"
    assert report.requests == len(requests)
    assert report.bodies_walked > 0
    assert report.walker.keys_checked > 0
    return report


def test_push_and_outcome_requests_match_the_sdk(push_evidence: list[dict[str, Any]]) -> None:
    report = _check(push_evidence, "wire evidence: push (twice) and collect-outcomes")
    assert report.problems == []


def test_demo_requests_match_the_sdk(demo_evidence: list[dict[str, Any]]) -> None:
    report = _check(demo_evidence, "wire evidence: demo flow (60 customers, 24 hours)")
    assert report.problems == []


@pytest.mark.parametrize("part", ["push_evidence", "demo_evidence"])
def test_the_recording_misses_nothing(part: str, request: pytest.FixtureRequest) -> None:
    """Sequence numbers are gapless, every request got an answer, none carries a credential."""
    recorded = request.getfixturevalue(part)
    assert [r["seq"] for r in recorded] == list(range(1, len(recorded) + 1))
    assert all(r["status"] is not None for r in recorded)
    assert all("authorization" not in r["headers"] for r in recorded)
    assert all("sandbox-secret" not in json.dumps(r) for r in recorded)
