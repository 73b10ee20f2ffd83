"""collect-outcomes: read Genesys wrap-up outcomes (sent / failed / skipped / unknown) of
pushed contacts back into the outbox; attempted and expired contacts are made uncontactable."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import (
    current_run_id,
    genesys_secret,
    masking_errors,
    recorded_run,
    run_instant,
    settings_with,
    utc_now,
)
from tasks.genesys import client_from_settings
from tasks.outbox import finish_run
from tasks.outcomes import collect_outcomes_from_genesys

__all__ = ["collect_outcomes"]


@flow(name="collect-outcomes")
@masking_errors
def collect_outcomes(
    now: str | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Move attempted pushed messages to sent / failed / skipped / unknown and expire the
    never-attempted ones whose window ended; returns the counts."""
    settings = settings_with(overrides, flow="collect-outcomes", needs=("genesys",))
    at, source = run_instant(now)
    run_id = current_run_id("outcomes")
    with recorded_run(
        settings, run_id=run_id, flow="collect-outcomes", as_of=at, as_of_source=source
    ) as engine:
        with client_from_settings(settings.genesys, genesys_secret(settings.genesys)) as client:
            counts = collect_outcomes_from_genesys(
                engine, client, settings.genesys, now=at, run_id=run_id
            )
        with engine.begin() as conn:
            finish_run(conn, run_id=run_id, now=utc_now(), status="succeeded")
    return {"run_id": run_id, **counts}
