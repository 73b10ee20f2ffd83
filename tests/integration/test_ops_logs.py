"""Masking under Prefect: a flow with personal data and a secret in its error and its log lines,
read back through the Prefect API (test harness): no full phone number, e-mail or secret in any
log, the state message or runs.error; the project's loggers do reach the API logs."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.prefect

PHONE_E164 = "+14165550123"
PHONE_NATIONAL = "020 7946 0958"  # a UK number in national format
EMAIL = "ana.silva@example.com"
SECRET = "Zq9-client-Secret-77x"


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _leaks(text: str) -> list[str]:
    """The pieces of personal data or secret that survive in ``text`` (digit runs compared
    without separators, so a re-grouped number still counts)."""
    found = [v for v in (EMAIL, "ana.silva", SECRET) if v in text]
    squeezed = _digits(text)
    found += [p for p in (PHONE_E164, PHONE_NATIONAL) if _digits(p)[-7:] in squeezed]
    return found


async def _logs_and_state(flow_run_id) -> tuple[list[str], str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    await APILogHandler.aflush()
    async with get_client() as client:
        logs = await client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        )
        run = await client.read_flow_run(flow_run_id)
    return [f"{log.name}: {log.message}" for log in logs], run.state.message or ""


def test_personal_data_and_secrets_are_masked_in_prefect_logs_and_state(
    prefect_harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:
    from prefect import flow

    from flows.build_reminders import build_reminders
    from flows.common import masking_errors, settings_with

    monkeypatch.setenv("REMINDERS_GENESYS__CLIENT_SECRET", SECRET)
    folder = tmp_path / f"export {EMAIL} {PHONE_NATIONAL}"
    folder.mkdir()
    warehouse = tmp_path / "wh.duckdb"
    overrides = {
        "warehouse": {"url": f"duckdb:///{warehouse}"},
        "sources": {"customers": {"kind": "csv", "path": str(folder / f"{PHONE_E164}.csv")}},
        "quality": {"gates": {"enabled": False}},
    }

    # 1. The real build flow fails on a missing file whose path holds an address and phones.
    state = build_reminders(overrides=overrides, return_state=True)
    assert state.is_failed()
    logs, message = asyncio.run(_logs_and_state(state.state_details.flow_run_id))
    assert logs, "the failed build left no logs in the Prefect API"
    assert "SourceError" in message  # the error is still named
    assert _leaks(message) == []
    for line in logs:
        assert _leaks(line) == [], line
    # The traceback reached the API logs, masked.
    assert any("Traceback" in line for line in logs)
    engine = sa.create_engine(f"duckdb:///{warehouse}")
    with engine.connect() as conn:
        error = conn.execute(sa.text("select error from runs")).scalar_one()
    engine.dispose()
    assert error.startswith("SourceError: customers:")
    assert _leaks(error) == []

    # 2. A project logger inside a flow: the line reaches the API, masked; exc_info masked.
    @flow(name="masking-probe")
    @masking_errors
    def probe() -> None:
        settings = settings_with(None)  # registers the client secret
        assert settings.genesys.client_secret is not None
        log = logging.getLogger("reminders.probe")
        log.info("probe line: sms %s, landline %s, mail %s", PHONE_E164, PHONE_NATIONAL, EMAIL)
        log.info("client secret %s", settings.genesys.client_secret.get_secret_value())
        try:
            raise ValueError(f"bad contact {EMAIL} / {PHONE_NATIONAL}")
        except ValueError:
            log.exception("while probing")
        raise RuntimeError(json.dumps({"to": PHONE_E164, "secret": SECRET}))

    state = probe(return_state=True)
    assert state.is_failed()
    logs, message = asyncio.run(_logs_and_state(state.state_details.flow_run_id))
    probe_lines = [line for line in logs if line.startswith("reminders.probe")]
    assert len(probe_lines) == 3, logs  # the project's logger reaches the Prefect API
    assert any("ValueError" in line and "Traceback" in line for line in probe_lines)
    assert "RuntimeError" in message
    for line in [*logs, message]:
        assert _leaks(line) == [], line
    # The console (what a worker prints) is masked too.
    console = capfd.readouterr()
    assert _leaks(console.out + console.err) == []
    notes = Path(os.environ.get("OPS_EVIDENCE_DIR") or "/nonexistent-ops-evidence")
    if notes.is_dir():
        text = (
            f"personal data put in: {PHONE_E164}, {PHONE_NATIONAL}, {EMAIL}, secret {SECRET}\n"
            f"flow run state message: {message}\n\nlogs read back via the Prefect API:\n"
            + "\n".join(logs)
        )
        (notes / "masking-logs-read-from-prefect-api.txt").write_text(
            text.replace(str(tmp_path), "<tmp>")
            .replace(str(Path(__file__).resolve().parents[2]), "<repo>")
            .replace(sys.base_prefix, "<python>")
        )
