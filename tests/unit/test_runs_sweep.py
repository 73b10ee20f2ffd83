"""tasks.runs: a dead run is found and marked abandoned; a live one never is."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta

import sqlalchemy as sa

from tasks.outbox import start_run
from tasks.runs import runner_alive, runner_token, sweep_abandoned
from tasks.warehouse import make_engine, migrate

NOW = datetime(2026, 11, 23, 12, 0)


def _dead_pid_token() -> str:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    token = runner_token(child.pid)
    child.wait()
    return token


def test_runner_alive() -> None:
    assert runner_alive(runner_token()) is True
    assert runner_alive(_dead_pid_token()) is False
    assert runner_alive("some-other-host:123:456") is None
    assert runner_alive(None) is None


def test_sweep_marks_only_dead_runs(tmp_path) -> None:
    engine = make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    migrate(engine)
    runs = {
        "dead": (_dead_pid_token(), NOW - timedelta(minutes=5)),
        "alive": (runner_token(), NOW - timedelta(hours=20)),
        "remote-young": ("other-host:1:2", NOW - timedelta(hours=1)),
        "remote-old": ("other-host:1:2", NOW - timedelta(hours=13)),
        "remote-over": ("other-host:1:3", NOW - timedelta(minutes=1)),
    }
    with engine.begin() as conn:
        for run_id, (token, started) in runs.items():
            start_run(
                conn,
                run_id=run_id,
                flow="f",
                as_of=started,
                now=started,
                dry_run=False,
                parameters={},
            )
            conn.execute(
                sa.text("update runs set runner = :t where run_id = :r"), {"t": token, "r": run_id}
            )
        found = sweep_abandoned(
            conn, now=NOW, by_run_id="finder", is_over=lambda r: r == "remote-over"
        )
        rows = {
            r.run_id: r
            for r in conn.execute(
                sa.text("select run_id, status, abandoned_at_utc, error from runs")
            )
        }
    engine.dispose()
    assert sorted(found) == ["dead", "remote-old", "remote-over"]
    for run_id in found:
        assert rows[run_id].status == "abandoned"
        assert rows[run_id].abandoned_at_utc == NOW
        assert rows[run_id].error.endswith("found by run finder")
    for run_id in ("alive", "remote-young"):
        assert rows[run_id].status == "running"
        assert rows[run_id].abandoned_at_utc is None
