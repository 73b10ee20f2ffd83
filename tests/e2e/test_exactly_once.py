"""Exactly-once push, proven: SIGKILL the push at every failpoint, resume, count sends.

A plan is built once into a DuckDB file; every case starts from a copy of it and a reset
sandbox configured with one reading of the unsourced behaviours (``CONFIGS``), runs
``reminders push --no-prefect`` in a child process with one failpoint armed (the child dies
by SIGKILL), optionally recycles the campaign between the kill and the resume (``DELETE
.../progress``, or the virtual clock run past the list's exhaustion), runs the push again
unarmed, lets the sandbox run the campaigns (and recycle again), and reads the sandbox
ledger: every pushed message key must have been sent exactly once.

Coverage: 13 failpoints run under ``hard`` (the sandbox defaults), 4 neighbouring ones only
under ``soft`` (the earlier, lenient readings), which also repeats two batch points; the
recycle cases run under both. Every failpoint runs under at least one reading.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import httpx
import polars as pl
import pytest

from genesys_sandbox.app import create_app
from genesys_sandbox.config import SandboxConfig
from genesys_sandbox.testing import serve
from tasks.eligibility import PRIOR_SCHEMA
from tasks.extract import extract_sources
from tasks.normalize import normalize
from tasks.outbox import save_plan, start_run
from tasks.plan import build_plan
from tasks.render import load_templates
from tasks.sample_data import generate
from tasks.settings import Settings
from tasks.warehouse import make_engine, migrate, read_frame

AS_OF = datetime(2026, 11, 23, 6, 0)
PUSH_AT = "2026-11-23T18:00:00Z"
"""13:00 in New York, 10:00 in Los Angeles, 08:00 in Honolulu: the slots that have opened in
every American zone are added; European and Asian windows are over (expired); later slots
wait (ready)."""
ROOT = Path(__file__).resolve().parents[2]

KILL_POINTS = [
    "push.before_token",
    "push.after_ready",
    "push.after_settle",
    "push.before_contact_list",
    "push.after_contact_list",
    "push.before_campaign_create",
    "push.after_campaign_create",
    "push.after_mark_pushing:1",
    "push.after_batch_sent:1",
    "push.after_batch_sent:3",
    "push.after_batch_recorded:2",
    "push.between_waves:2",
    "push.before_campaign_start",
    "push.after_campaign_start",
    "http.request:9",
    "http.response:9",
    "http.response:14",
]


SOFT_ONLY = [
    "push.after_ready",
    "push.after_contact_list",
    "push.before_campaign_create",
    "http.response:9",
]
"""Kill points run only under ``soft`` (neighbours of points ``hard`` runs), so the file stays
near 300 s; every failpoint runs under at least one reading."""
HARD_POINTS = [p for p in KILL_POINTS if p not in SOFT_ONLY]
SOFT_POINTS = [*SOFT_ONLY, "push.after_batch_sent:1", "push.after_batch_recorded:2"]
RECYCLE_CASES = [("push.after_batch_sent:1", "progress"), ("push.between_waves:1", "exhaust")]
"""Recycle cases: a first push at 18:00 is sent by the campaign until 19:00; the push at 19:00
is killed; the campaign is recycled (``DELETE .../progress``, or the clock runs to 20:00 past
the list's exhaustion) before the push is resumed."""
SECOND_PUSH_AT = "2026-11-23T19:00:00Z"

CONFIGS: dict[str, dict] = {
    "hard": {
        "outside_window": "skip",
        "readd_requeued": "recontact",
        "donotqueue_new": "no_effect",
        "recycle": "on_exhaustion",
        "delete_in_use": "keep",
        "in_use_scope": "any_campaign",
        "wrapup_codes": "official",
        "carrier_failure_wrapup": "sent",
    },
    "soft": {
        "outside_window": "reschedule",
        "readd_requeued": "keep_attempted",
        "donotqueue_new": "wait_for_recycle",
        "recycle": "never",
        "delete_in_use": "delete",
        "in_use_scope": "running_campaign",
        "wrapup_codes": "legacy",
        "carrier_failure_wrapup": "failed",
    },
}

HARD_CASES = [pytest.param("hard", p, None, id=f"hard-{p}") for p in HARD_POINTS]
"""The cases of this file; the soft, recycle and fault cases are in test_exactly_once_more.py
(two files, so two test workers share the matrix)."""
MORE_CASES = [pytest.param("soft", p, None, id=f"soft-{p}") for p in SOFT_POINTS] + [
    pytest.param(c, p, how, id=f"{c}-{p}-recycle-{how}")
    for c in CONFIGS
    for p, how in RECYCLE_CASES
]


def _reset(url: str, config: str) -> None:
    with httpx.Client(base_url=url, timeout=60) as http:
        http.post("/sandbox/reset").raise_for_status()
        http.put("/sandbox/faults", json={}).raise_for_status()
        http.put("/sandbox/config", json=CONFIGS[config]).raise_for_status()
        http.post("/sandbox/run", json={"until": PUSH_AT}).raise_for_status()


EXHAUSTED_AT = "2026-11-23T20:00:00Z"


def _recycle(url: str, how: str) -> None:
    if how == "exhaust":
        with httpx.Client(base_url=url, timeout=120) as http:
            http.post("/sandbox/run", json={"until": EXHAUSTED_AT}).raise_for_status()
        return
    from tasks.genesys import client_from_settings
    from tasks.settings import GenesysSettings

    settings = GenesysSettings(base_url=url, client_id="sandbox-client")
    with client_from_settings(settings, "sandbox-secret") as client:
        for campaign in client.list_named("campaigns"):  # SMS and every e-mail route
            client.recycle_campaign(campaign["id"])


@pytest.fixture(scope="module")
def sandbox():
    app = create_app(SandboxConfig(rate_limit_per_minute=100_000))
    with serve(app) as url:
        yield url


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> tuple[Path, Path, frozenset[str]]:
    folder = tmp_path_factory.mktemp("exactly-once")
    sample = folder / "sample"
    generate(1000, seed=5, as_of=AS_OF.date()).write(sample, "csv")
    toml = folder / "reminders.toml"
    sources = "\n".join(
        f'[sources.{n}]\nkind = "csv"\npath = "{sample / (n + ".csv")}"'
        for n in ("customers", "invoices", "consent_events", "contact_history")
    )
    toml.write_text(sources + "\n")
    settings = Settings.model_validate(
        {
            "sources": {
                n: {"kind": "csv", "path": str(sample / f"{n}.csv")}
                for n in ("customers", "invoices", "consent_events", "contact_history")
            }
        }
    )
    base = folder / "planned.duckdb"
    engine = make_engine(f"duckdb:///{base}")
    migrate(engine)
    extracted = extract_sources(settings.sources)
    plan = build_plan(
        extracted,
        normalize(extracted, as_of=AS_OF, parsing=settings.parsing),
        pl.DataFrame(schema=PRIOR_SCHEMA),
        as_of=AS_OF,
        settings=settings,
        templates=load_templates(),
    )
    with engine.begin() as conn:
        start_run(
            conn,
            run_id="build",
            flow="build-reminders",
            as_of=AS_OF,
            now=AS_OF,
            dry_run=False,
            parameters={},
        )
        save_plan(conn, plan, run_id="build", now=AS_OF, dry_run=False)
    engine.dispose()
    assert plan.accounting.ok, plan.accounting.problems
    return base, toml, frozenset(plan.messages["message_key"])


def _push(
    url: str,
    warehouse: Path,
    toml: Path,
    failpoint: str | None,
    timeout: int = 300,
    now: str = PUSH_AT,
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMINDERS_")} | {
        "REMINDERS_CONFIG": str(toml),
        "REMINDERS_WAREHOUSE__URL": f"duckdb:///{warehouse}",
        "REMINDERS_GENESYS__BASE_URL": url,
        "REMINDERS_GENESYS__CLIENT_ID": "sandbox-client",
        "REMINDERS_GENESYS__CLIENT_SECRET": "sandbox-secret",
        "REMINDERS_GENESYS__PUSH_BATCH_SIZE": "10",
        "REMINDERS_GENESYS__MESSAGES_PER_MINUTE": "200",
        "REMINDERS_GENESYS__MAX_ATTEMPTS": "12",
        "REMINDERS_GENESYS__REQUESTS_PER_MINUTE": "6000",
        "REMINDERS_FAILPOINT": failpoint or "",
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "push",
            "--no-prefect",
            "--now",
            now,
            "--horizon-minutes",
            "1440",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _ledger_after_campaigns(url: str) -> dict:
    """Run the campaigns through the day, recycle them, run them through the next morning."""
    with httpx.Client(base_url=url, timeout=120) as http:
        http.post("/sandbox/run", json={"until": "2026-11-24T03:00:00Z"}).raise_for_status()
        _recycle(url, "progress")
        http.post("/sandbox/run", json={"until": "2026-11-24T12:00:00Z"}).raise_for_status()
        return http.get("/sandbox/ledger").json()


def _outbox(warehouse: Path) -> pl.DataFrame:
    engine = make_engine(f"duckdb:///{warehouse}")
    with engine.connect() as conn:
        frame = read_frame(conn, "select message_key, state from messages")
    engine.dispose()
    return frame


# After a push (before outcomes are collected) every message of the plan rests in one of these
# (ready: its slot has not opened yet at the push time).
PUSH_TERMINAL = {"ready", "pushed", "rejected", "deferred", "cancelled", "expired"}


def _check_exactly_once(url: str, warehouse: Path, planned_keys: frozenset[str]) -> dict:
    outbox = _outbox(warehouse)
    # Every planned message has exactly one outbox row, and it rests in a terminal state.
    assert outbox["message_key"].n_unique() == outbox.height
    assert set(outbox["message_key"]) == planned_keys
    states = dict(outbox.group_by("state").len().iter_rows())
    assert set(states) <= PUSH_TERMINAL, states
    assert sum(states.values()) == len(planned_keys)
    pushed = set(outbox.filter(pl.col("state") == "pushed")["message_key"])
    ledger = _ledger_after_campaigns(url)
    sent = [m["contact_id"] for m in ledger["messages"] if m["source"] == "campaign"]
    counts = pl.Series(sent).value_counts() if sent else None
    duplicates = ledger["counts"]["duplicates"]
    assert duplicates == 0
    assert counts is None or counts["count"].max() == 1
    assert set(sent) <= pushed
    # e-mails: Genesys rendered each from its route's content template, as the outbox stores it
    mails = {
        m["contact_id"]: (m["subject"], m["body"])
        for m in ledger["messages"]
        if m["source"] == "campaign" and m["channel"] == "email"
    }
    texts = _texts(warehouse)
    assert all(texts[key] == shown for key, shown in mails.items())
    # collect-outcomes: every pushed message ends with its wrap-up outcome, or expired (never
    # attempted, made uncontactable and verified); the attempted ones are exactly the sent ones
    after = _collected(url, warehouse)
    final = dict(after.group_by("state").len().iter_rows())
    assert "pushed" not in final, final
    finished = after.filter(pl.col("message_key").is_in(list(pushed)))
    assert set(finished["state"]) <= {"sent", "failed", "unknown", "expired"}
    attempted = set(
        after.filter(pl.col("state").is_in(["sent", "failed", "unknown"]))["message_key"]
    )
    assert attempted == set(sent)
    return {
        "planned": len(planned_keys),
        "states": states,
        "pushed": len(pushed),
        "sent": len(sent),
        "emails": len(mails),
        "duplicates": duplicates,
        "after_outcomes": final,
    }


def _texts(warehouse: Path) -> dict[str, tuple[str | None, str]]:
    engine = make_engine(f"duckdb:///{warehouse}")
    with engine.connect() as conn:
        frame = read_frame(conn, "select message_key, subject, body from messages")
    engine.dispose()
    return {key: (subject, body) for key, subject, body in frame.iter_rows()}


def _collected(url: str, warehouse: Path) -> pl.DataFrame:
    from tasks.genesys import client_from_settings
    from tasks.outcomes import collect_outcomes_from_genesys
    from tasks.settings import GenesysSettings

    engine = make_engine(f"duckdb:///{warehouse}")
    settings = GenesysSettings(base_url=url, client_id="sandbox-client")
    with client_from_settings(settings, "sandbox-secret") as client:
        collect_outcomes_from_genesys(
            engine, client, settings, now=datetime(2026, 11, 24, 12, 0), run_id="outcomes"
        )
    with engine.connect() as conn:
        frame = read_frame(conn, "select message_key, state from messages")
    engine.dispose()
    return frame


def kill_and_resume(
    config: str, point: str, recycle: str | None, sandbox, planned, tmp_path
) -> None:
    """One matrix case: kill the push at ``point``, optionally recycle, resume, check."""
    base, toml, keys = planned
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(base, warehouse)
    _reset(sandbox, config)
    kill_at = resume_at = PUSH_AT
    if recycle:  # contacts already sent by a running campaign when the kill comes
        first = _push(sandbox, warehouse, toml, None)
        assert first.returncode == 0, first.stderr[-2000:]
        httpx.post(f"{sandbox}/sandbox/run", json={"until": SECOND_PUSH_AT}).raise_for_status()
        kill_at = resume_at = SECOND_PUSH_AT

    killed = _push(sandbox, warehouse, toml, point, now=kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    if recycle:
        _recycle(sandbox, recycle)
        if recycle == "exhaust":  # the clock ran on: resume at the sandbox's time
            resume_at = EXHAUSTED_AT
    resumed = _push(sandbox, warehouse, toml, None, now=resume_at)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    result = _check_exactly_once(sandbox, warehouse, keys)
    assert result["pushed"] > 50
    assert result["emails"] > 0, "no e-mail sent: the e-mail routes were not exercised"
    print(f"\nMATRIX {config} {point} recycle={recycle}: {result}")


@pytest.mark.parametrize(("config", "point", "recycle"), HARD_CASES)
def test_sigkill_then_resume_sends_each_message_once(
    config, point, recycle, sandbox, planned, tmp_path
) -> None:
    kill_and_resume(config, point, recycle, sandbox, planned, tmp_path)
