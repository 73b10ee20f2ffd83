"""Crash hygiene: a push killed mid-run (SIGKILL) leaves no Prefect server behind, and the next
run of another flow marks its runs row ``abandoned`` with the time it was found."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path

import httpx
import sqlalchemy as sa

from flows.demo import running_sandbox
from tasks.sample_data import generate

ROOT = Path(__file__).resolve().parents[2]
# Evidence for a closing note, written only when asked for (OPS_EVIDENCE_DIR=<folder>).
NOTES = Path(os.environ.get("OPS_EVIDENCE_DIR") or "/nonexistent-ops-evidence")


def _cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _server_answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_killed_push_leaves_no_server_and_is_marked_abandoned(tmp_path) -> None:
    generate(200, seed=3, as_of=date(2026, 11, 23)).write(tmp_path / "data" / "sample", "csv")
    with running_sandbox() as sandbox:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REMINDERS_", "PREFECT_"))}
        env |= {
            "PYTHONPATH": str(ROOT),
            "PREFECT_HOME": str(tmp_path / "prefect"),
            "REMINDERS_CONFIG": str(tmp_path / "absent.toml"),
            "REMINDERS_GENESYS__BASE_URL": sandbox,
            "REMINDERS_GENESYS__CLIENT_ID": "sandbox-client",
            "REMINDERS_GENESYS__CLIENT_SECRET": "sandbox-secret",
        }
        built = _cli(tmp_path, env, "build", "--as-of", "2026-11-23T06:00:00Z")
        assert built.returncode == 0, built.stderr[-3000:]

        killed = _cli(
            tmp_path,
            env | {"REMINDERS_FAILPOINT": "push.after_ready"},
            "push",
            "--now",
            "2026-11-23T14:05:00Z",
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
        # The push ran under the command's temporary Prefect server (its URL is in the log) ...
        urls = re.findall(r"View at (http://127\.0\.0\.1:\d+)/", killed.stderr)
        assert urls, killed.stderr[-3000:]
        # ... which died with the command.
        deadline = time.monotonic() + 15
        while _server_answers(urls[0]) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert not _server_answers(urls[0]), "the temporary Prefect server outlived the command"

        engine = sa.create_engine(f"duckdb:///{tmp_path / 'data' / 'warehouse.duckdb'}")
        with engine.connect() as conn:
            before = conn.execute(
                sa.text("select run_id, status from runs where flow = 'push-waves'")
            ).one()
        engine.dispose()
        assert before.status == "running"

        found_from = datetime.utcnow().replace(microsecond=0)
        nxt = _cli(tmp_path, env, "build", "--as-of", "2026-11-23T07:00:00Z", "--dry-run")
        assert nxt.returncode == 0, nxt.stderr[-3000:]
    engine = sa.create_engine(f"duckdb:///{tmp_path / 'data' / 'warehouse.duckdb'}")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select run_id, flow, status, started_at_utc, abandoned_at_utc, error"
                " from runs order by started_at_utc"
            )
        ).all()
    engine.dispose()
    push = next(r for r in rows if r.run_id == before.run_id)
    finder = rows[-1]
    assert push.status == "abandoned"
    assert push.abandoned_at_utc >= found_from
    assert f"found by run {finder.run_id}" in push.error
    assert "is gone" in push.error
    assert finder.flow == "build-reminders"
    assert finder.status == "succeeded"
    if NOTES.is_dir():
        lines = [" | ".join(str(v) for v in r) for r in rows]
        text = (
            "runs after a push killed by SIGKILL at push.after_ready and a later build:\n"
            + "\n".join(lines)
            + f"\n\ntemporary server of the killed command: {urls[0]} "
            "(no longer answering /api/health)\n"
            + "\n--- stderr tail of the killed command ---\n"
            + killed.stderr[-2500:]
        )
        text = text.replace(str(tmp_path), "<tmp>").replace(str(ROOT), "<repo>")
        (NOTES / "killed-run-abandoned.txt").write_text(text)
