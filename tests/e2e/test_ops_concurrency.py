"""Concurrency: an analyst connection held open does not fail a flow; two overlapping push
runs neither fail (file lock, dnc_entries unique constraint) nor send anything twice."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import httpx
import pytest
import sqlalchemy as sa

from flows.demo import running_sandbox
from tasks.sample_data import generate
from tasks.snapshot import analyst_snapshot_path

ROOT = Path(__file__).resolve().parents[2]
# Evidence for a closing note, written only when asked for (OPS_EVIDENCE_DIR=<folder>).
NOTES = Path(os.environ.get("OPS_EVIDENCE_DIR") or "/nonexistent-ops-evidence")


@pytest.mark.prefect
def test_an_open_analyst_connection_does_not_fail_a_build(prefect_harness, tmp_path) -> None:
    from flows.build_reminders import build_reminders

    generate(200, seed=5, as_of=date(2026, 11, 23)).write(tmp_path, "csv")
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    overrides = {
        "warehouse": {"url": url},
        "sources": {
            n: {"kind": "csv", "path": str(tmp_path / f"{n}.csv")}
            for n in ("customers", "invoices", "consent_events", "contact_history")
        },
    }
    first = build_reminders(as_of="2026-11-23T06:00:00Z", overrides=overrides, dry_run=True)
    snapshot = analyst_snapshot_path(url)
    assert snapshot is not None
    assert snapshot.exists()
    analyst = duckdb.connect(str(snapshot), read_only=True)  # held open through the next build
    try:
        assert analyst.execute("select count(*) from runs").fetchone() == (1,)
        second = build_reminders(as_of="2026-11-24T06:00:00Z", overrides=overrides, dry_run=True)
        # The open connection keeps reading its copy, undisturbed ...
        assert analyst.execute("select count(*) from runs").fetchone() == (1,)
        planned = analyst.execute("select count(*) from decisions").fetchone()[0]
    finally:
        analyst.close()
    # ... and a new one sees both runs.
    with duckdb.connect(str(snapshot), read_only=True) as fresh:
        runs = fresh.execute("select run_id, status from runs order by started_at_utc").fetchall()
    assert [r[0] for r in runs] == [first["run_id"], second["run_id"]]
    assert all(r[1] == "succeeded" for r in runs)
    assert planned > 0
    if NOTES.is_dir():
        (NOTES / "analyst-connection-during-build.txt").write_text(
            f"analyst connection opened read-only on {snapshot.name} before the second build,\n"
            f"held open while build {second['run_id']} ran: the build succeeded; the open\n"
            "connection still saw 1 run; a new connection afterwards saw:\n"
            + "\n".join(f"  {r[0]} {r[1]}" for r in runs)
            + "\n"
        )


def test_two_overlapping_pushes_neither_fail_nor_double_send(tmp_path) -> None:
    generate(300, seed=3, as_of=date(2026, 11, 23)).write(tmp_path / "data" / "sample", "csv")
    with running_sandbox("--latency-ms", "30") as sandbox:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REMINDERS_", "PREFECT_"))}
        env |= {
            "PYTHONPATH": str(ROOT),
            "PREFECT_HOME": str(tmp_path / "prefect"),
            "REMINDERS_CONFIG": str(tmp_path / "absent.toml"),
            "REMINDERS_GENESYS__BASE_URL": sandbox,
            "REMINDERS_GENESYS__CLIENT_ID": "sandbox-client",
            "REMINDERS_GENESYS__CLIENT_SECRET": "sandbox-secret",
            "REMINDERS_GENESYS__PUSH_BATCH_SIZE": "5",
        }
        base = [sys.executable, "-m", "flows.cli"]
        built = subprocess.run(
            [*base, "build", "--as-of", "2026-11-23T06:00:00Z"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert built.returncode == 0, built.stderr[-3000:]
        push = [
            *base,
            "push",
            "--no-prefect",
            "--now",
            "2026-11-23T15:05:00Z",
            "--horizon-minutes",
            "1440",
        ]
        runs = [
            subprocess.Popen(
                push,
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [r.communicate(timeout=600) for r in runs]
        for run, (_out, err) in zip(runs, outputs, strict=True):
            assert run.returncode == 0, err[-3000:]
            assert "UniqueViolation" not in err
            assert "Constraint Error" not in err
        ledger = httpx.get(f"{sandbox}/sandbox/ledger").json()["counts"]
        httpx.post(f"{sandbox}/sandbox/run", json={"until": "2026-11-24T06:00:00Z"})
        ledger = httpx.get(f"{sandbox}/sandbox/ledger").json()["counts"]
    engine = sa.create_engine(f"duckdb:///{tmp_path / 'data' / 'warehouse.duckdb'}")
    with engine.connect() as conn:
        statuses = conn.execute(
            sa.text("select status, count(*) from runs where flow = 'push-waves' group by 1")
        ).all()
        pushed = conn.execute(
            sa.text("select count(*) from messages where state in ('pushed', 'sent')")
        ).scalar_one()
    engine.dispose()
    assert statuses == [("succeeded", 2)]
    assert pushed > 0
    assert ledger["duplicates"] == 0
    assert ledger["total"] == ledger["distinct_contacts"]
