"""collect-outcomes: read Genesys wrap-up outcomes (sent / failed / skipped / unknown) of
pushed contacts back into the outbox; attempted and expired contacts are made uncontactable.
The attempt history is kept first (``attempts``, issue 9), before the attempted contacts are
deleted from their lists."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.engine import Engine

from flows.artifacts import publish_collect
from flows.common import (
    current_run_id,
    flow_run_namer,
    genesys_secret,
    masking_errors,
    recorded_run,
    run_instant,
    settings_with,
    utc_now,
    writes_warehouse,
)
from tasks.attempts import collect_attempts_from_genesys
from tasks.genesys import client_from_settings
from tasks.locks import share_rate_budget
from tasks.outbox import finish_run
from tasks.outcomes import ListExport, apply_outcomes, export_outcomes

__all__ = ["collect_outcomes"]

log = logging.getLogger(__name__)


@task(
    name="attempts",
    task_run_name="keep the attempt history at {now:%Y-%m-%d %H:%M}",
    cache_policy=NO_CACHE,
)
def attempts_task(engine: Engine, client: Any, now: datetime, run_id: str) -> dict[str, int]:
    """Keep Genesys's attempt history before outcomes deletes the attempted contacts. Never
    fails the outcome collection (reconcile-daily reads the attempts again)."""
    try:
        return collect_attempts_from_genesys(engine, client, now=now, run_id=run_id)
    except Exception:
        log.exception("could not capture the attempts; reconcile-daily reads them again")
        return {}


@task(
    name="export outcomes",
    task_run_name="export outcomes at {now:%Y-%m-%d %H:%M}",
    cache_policy=NO_CACHE,
)
def export_task(engine: Engine, client: Any, now: datetime) -> list[ListExport]:
    """Read the attempts of every pushed message from Genesys, per contact list (no writes)."""
    exports = export_outcomes(engine, client)
    log.info(
        "exported %d contact lists: %d pushed messages, %d attempts",
        len(exports),
        sum(e.messages.height for e in exports),
        sum(e.attempts.height for e in exports if e.attempts is not None),
    )
    return exports


@task(
    name="apply outcomes",
    task_run_name="apply outcomes at {now:%Y-%m-%d %H:%M}",
    cache_policy=NO_CACHE,
)
def apply_task(
    engine: Engine, client: Any, exports: list[ListExport], now: datetime, run_id: str
) -> dict[str, int]:
    """Apply the wrap-up outcomes, finish attempted contacts and expire the ones whose window
    ended (verified uncontactable)."""
    return apply_outcomes(engine, client, exports, now=now, run_id=run_id)


@flow(name="collect-outcomes", flow_run_name=flow_run_namer("collect-outcomes", "now"))
@masking_errors
@writes_warehouse
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
            share_rate_budget(
                client,
                settings.data_dir,
                settings.genesys.client_id or "",
                settings.genesys.requests_per_minute,
            )
            attempts = attempts_task(engine, client, at, run_id)
            exports = export_task(engine, client, at)
            counts = apply_task(engine, client, exports, at, run_id)
            stats = dict(client.stats)
        with engine.begin() as conn:
            finish_run(conn, run_id=run_id, now=utc_now(), status="succeeded")
    result = {"run_id": run_id, **counts, "attempts": attempts}
    publish_collect(result, stats)
    return result
