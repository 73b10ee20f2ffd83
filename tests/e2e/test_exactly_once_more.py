"""Exactly-once push, the rest of the matrix (see test_exactly_once.py for the method): the
kill points under the ``soft`` reading, the recycle cases under both readings, and a push under
injected 429s, 5xx, dropped connections and token expiry. A file of its own so that two test
workers share the matrix; it builds its own plan and sandbox (module fixtures)."""

from __future__ import annotations

import shutil

import httpx
import pytest

from tests.e2e.test_exactly_once import (
    MORE_CASES,
    _check_exactly_once,
    _push,
    _reset,
    kill_and_resume,
    planned,
    sandbox,
)

__all__ = ["planned", "sandbox"]  # module fixtures, imported for this file's tests


@pytest.mark.parametrize(("config", "point", "recycle"), MORE_CASES)
def test_sigkill_then_resume_sends_each_message_once(
    config, point, recycle, sandbox, planned, tmp_path
) -> None:
    kill_and_resume(config, point, recycle, sandbox, planned, tmp_path)


def test_faults_429_5xx_drops_and_token_expiry(sandbox, planned, tmp_path) -> None:
    base, toml, keys = planned
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(base, warehouse)
    _reset(sandbox, "hard")
    faults = {
        "rate_429": 0.2,
        "retry_after_seconds": 1,
        "rate_5xx": 0.05,
        "drop_after_commit_rate": 0.05,
        "expire_tokens_after_requests": 25,
        "seed": 3,
    }
    httpx.put(f"{sandbox}/sandbox/faults", json=faults).raise_for_status()
    try:
        first = _push(sandbox, warehouse, toml, None, timeout=600)
        if first.returncode != 0:
            second = _push(sandbox, warehouse, toml, None, timeout=600)
            assert second.returncode == 0, second.stderr[-2000:]
        stats = httpx.get(f"{sandbox}/sandbox/stats").json()
    finally:
        httpx.put(
            f"{sandbox}/sandbox/faults",
            json={k: 0 if isinstance(v, float) else v for k, v in faults.items()}
            | {"expire_tokens_after_requests": None},
        ).raise_for_status()
    result = _check_exactly_once(sandbox, warehouse, keys)
    print(f"\nfaults {faults}: {result}; sandbox stats {stats}")
    assert result["pushed"] > 50
