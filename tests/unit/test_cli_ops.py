"""The CLI: short errors (traceback only with --debug), config show with sources and secrets
masked, --config, help without reStructuredText."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("REMINDERS_")}
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=tmp_path,
        env=base | {"PYTHONPATH": str(ROOT), "REMINDERS_CONFIG": str(tmp_path / "no.toml")} | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_expected_error_is_two_lines_and_debug_shows_the_traceback(tmp_path) -> None:
    short = _cli(tmp_path, "push", "--no-prefect", "--now", "2026-11-23T14:05:00Z")
    assert short.returncode == 1
    lines = short.stderr.strip().splitlines()
    assert lines[-2].startswith("error: ConfigurationError: push-waves cannot start: missing")
    assert "REMINDERS_GENESYS__CLIENT_ID" in lines[-2]
    assert lines[-1] == "(run again with --debug for the traceback)"
    assert "Traceback" not in short.stderr
    debug = _cli(tmp_path, "--debug", "push", "--no-prefect", "--now", "2026-11-23T14:05:00Z")
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    notes = Path(os.environ.get("OPS_EVIDENCE_DIR") or "/nonexistent-ops-evidence")
    if notes.is_dir():  # evidence for a closing note, only when asked for
        (notes / "failing-cli-command.txt").write_text(
            "$ reminders push --no-prefect --now 2026-11-23T14:05:00Z   (no Genesys settings)\n"
            f"exit code {short.returncode}; the whole output, stdout then stderr:\n"
            f"--- stdout ({len(short.stdout.splitlines())} lines) ---\n{short.stdout}"
            f"--- stderr ({len(short.stderr.splitlines())} lines) ---\n{short.stderr}"
        )


def test_config_show_masks_secrets_and_names_sources(tmp_path) -> None:
    toml = tmp_path / "mine.toml"
    toml.write_text("[cadence]\nmax_attempts_per_invoice = 2\n")
    shown = _cli(
        tmp_path,
        "--config",
        str(toml),
        "config",
        "show",
        REMINDERS_GENESYS__CLIENT_SECRET="sup3r-secret-value",
        REMINDERS_WAREHOUSE__URL="postgresql://u:pw-4711@db/wh",
    )
    assert shown.returncode == 0, shown.stderr
    assert "sup3r-secret-value" not in shown.stdout
    assert "pw-4711" not in shown.stdout
    rows = {line.split()[0]: line for line in shown.stdout.splitlines()}
    assert rows["genesys.client_secret"].endswith("[env REMINDERS_GENESYS__CLIENT_SECRET]")
    assert rows["cadence.max_attempts_per_invoice"].split()[1] == "2"
    assert rows["cadence.max_attempts_per_invoice"].endswith(f"[file {toml.resolve()}]")
    assert rows["cadence.frequency_cap_hours"].endswith("[default]")


def test_help_has_no_restructuredtext(tmp_path) -> None:
    for args in (["--help"], ["push", "--help"], ["collect-outcomes", "--help"]):
        out = _cli(tmp_path, *args)
        assert out.returncode == 0, out.stderr
        assert "``" not in out.stdout
        assert ":func:" not in out.stdout


def test_prefect_state_goes_under_the_configured_data_dir(tmp_path, monkeypatch) -> None:
    """A command's Prefect state (results included) goes to <data_dir>/prefect of the
    effective settings: the settings file's data_dir, not ./data."""
    from flows.cli import prefect_home

    config = tmp_path / "reminders.toml"
    config.write_text(f'data_dir = "{(tmp_path / "elsewhere").as_posix()}"\n')
    monkeypatch.delenv("REMINDERS_DATA_DIR", raising=False)
    monkeypatch.setenv("REMINDERS_CONFIG", str(config))
    monkeypatch.chdir(tmp_path)
    assert prefect_home() == (tmp_path / "elsewhere" / "prefect").resolve()
    monkeypatch.setenv("REMINDERS_DATA_DIR", str(tmp_path / "from-env"))
    assert prefect_home() == (tmp_path / "from-env" / "prefect").resolve()
