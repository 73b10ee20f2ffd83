"""collect-outcomes: read Genesys wrap-up outcomes (sent / failed / skipped / unknown) of
pushed contacts back into the outbox; attempted and expired contacts are made uncontactable."""

from __future__ import annotations

import logging
from typing import Any

from prefect import flow

from flows.common import (
    current_run_id,
    genesys_secret,
    parse_utc_instant,
    recorded_run,
    settings_with,
    utc_now,
)
from tasks.attempts import collect_attempts_from_genesys
from tasks.genesys import client_from_settings
from tasks.outbox import finish_run
from tasks.outcomes import collect_outcomes_from_genesys

__all__ = ["collect_outcomes"]

log = logging.getLogger(__name__)


@flow(name="collect-outcomes")
def collect_outcomes(
    now: str | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Move attempted pushed messages to sent / failed / skipped / unknown and expire the
    never-attempted ones whose window ended; returns the counts."""
    settings = settings_with(overrides)
    at = parse_utc_instant(now)
    run_id = current_run_id("outcomes")
    with recorded_run(settings, run_id=run_id, flow="collect-outcomes", as_of=at) as engine:
        with client_from_settings(settings.genesys, genesys_secret(settings.genesys)) as client:
            attempts = _capture_attempts(engine, client, now=at, run_id=run_id)
            counts = collect_outcomes_from_genesys(
                engine, client, settings.genesys, now=at, run_id=run_id
            )
        with engine.begin() as conn:
            finish_run(conn, run_id=run_id, now=utc_now(), status="succeeded")
    return {"run_id": run_id, **counts, "attempts": attempts}


def _capture_attempts(engine: Any, client: Any, *, now: Any, run_id: str) -> dict[str, int]:
    """Issue 9: keep Genesys's attempt history (``attempts``) before outcomes deletes the
    attempted contacts. Never fails the outcome collection."""
    try:
        return collect_attempts_from_genesys(engine, client, now=now, run_id=run_id)
    except Exception:  # the attempts are read again by reconcile-daily
        log.exception("could not capture the attempts; reconcile-daily reads them again")
        return {}
