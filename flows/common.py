"""Small helpers shared by the flows: settings with overrides, time parsing, run ids."""

from __future__ import annotations

import functools
import inspect
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import pendulum
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Connection, Engine

from tasks.errors import ConfigurationError, GateFailed
from tasks.locks import host_lock, lock_path
from tasks.masking import install_masking, mask_exception, mask_text, register_secret
from tasks.outbox import finish_run, start_run
from tasks.runs import runner_token, sweep_abandoned
from tasks.settings import (
    GenesysSettings,
    Settings,
    load_settings,
    missing_settings,
    secret_override_paths,
)
from tasks.snapshot import publish_analyst_snapshot
from tasks.warehouse import make_engine, migrate

# The safety net under a worker started without flows/logging.yml: every handler that exists
# once Prefect has configured logging (the flow modules import prefect's flow first) masks.
install_masking()

log = logging.getLogger("reminders.runs")

__all__ = [
    "begin_run",
    "current_run_id",
    "error_text",
    "flow_run_namer",
    "genesys_secret",
    "masked_errors",
    "masking_errors",
    "open_warehouse",
    "parse_utc_instant",
    "recorded_run",
    "run_instant",
    "scheduled_start",
    "settings_with",
    "utc_now",
    "warehouse_writer",
    "writes_warehouse",
]


def settings_with(
    overrides: dict[str, Any] | None, *, flow: str | None = None, needs: tuple[str, ...] = ()
) -> Settings:
    """Settings from environment and file, with ``overrides`` (nested dicts) on top.

    ``overrides`` is a flow parameter, stored in Prefect's database: one that carries a secret
    (a client secret, a URL with a password) is refused with a :class:`ConfigurationError`
    naming the keys; secrets come from the environment or Prefect Secret blocks named in
    settings (``genesys.client_secret_block``, ``warehouse.url_block``), resolved here. With
    ``needs`` (see :func:`tasks.settings.missing_settings`), settings ``flow`` cannot run
    without fail at once with one line naming them."""
    refused = secret_override_paths(overrides or {})
    if refused:
        raise ConfigurationError(
            f"overrides must not carry secrets (Prefect stores parameters in plain text): "
            f"{', '.join(refused)}; set them in the environment (REMINDERS_...) or name a "
            "Prefect Secret block (genesys.client_secret_block, warehouse.url_block)"
        )
    settings = load_settings(**(overrides or {}))
    if settings.warehouse.url_block:
        url = _secret_block(settings.warehouse.url_block)
        register_secret(url)
        settings.warehouse.url = SecretStr(url)
    missing = missing_settings(settings, needs)
    if missing:
        raise ConfigurationError(
            f"{flow or 'this flow'} cannot start: missing settings {', '.join(missing)}"
        )
    return settings


def _secret_block(name: str) -> str:
    from prefect.blocks.system import Secret

    try:
        return str(Secret.load(name).get())
    except ValueError as exc:
        raise ConfigurationError(f"Prefect Secret block {name!r} not found: {exc}") from None


def utc_now() -> datetime:
    """The current time as naive UTC, whole seconds."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def parse_utc_instant(value: str | datetime | None) -> datetime:
    """An ISO-8601 string or datetime as naive UTC; naive input is taken as UTC; None is now."""
    if value is None:
        return utc_now()
    if isinstance(value, str):
        parsed = pendulum.parse(value, tz="UTC")
        if not isinstance(parsed, datetime):
            raise ValueError(f"not a date-time: {value!r}")
        value = parsed
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.replace(microsecond=0)


def scheduled_start() -> datetime | None:
    """The current Prefect flow run's scheduled (expected) start time as naive UTC, whole
    seconds; None outside a flow run."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    expected = context.flow_run.expected_start_time
    return parse_utc_instant(expected) if expected is not None else None


def run_instant(value: str | datetime | None) -> tuple[datetime, str]:
    """(instant, source) of a flow's ``as_of`` / ``now`` parameter: the value when given
    (``parameter``); when empty, the flow run's scheduled start time (``scheduled``), so a
    late run, a retry or a backfill plans for the instant it was scheduled for; outside
    Prefect, the clock (``clock``)."""
    if value not in (None, ""):
        return parse_utc_instant(value), "parameter"
    scheduled = scheduled_start()
    if scheduled is not None:
        return scheduled, "scheduled"
    return utc_now(), "clock"


def flow_run_namer(label: str, instant: str) -> Callable[[], str]:
    """A ``flow_run_name`` callable: ``<label> <instant or 'scheduled HH:MM'> [dry-run]``, e.g.
    ``push-waves 2026-11-23T13:15Z dry-run`` or ``build-reminders scheduled 2026-11-23T06:00Z``."""

    def name() -> str:
        from prefect.runtime import flow_run

        params = flow_run.parameters or {}
        value = params.get(instant)
        if value:
            when = f"{parse_utc_instant(value):%Y-%m-%dT%H:%MZ}"
        else:
            when = f"scheduled {parse_utc_instant(flow_run.scheduled_start_time):%Y-%m-%dT%H:%MZ}"
        parts = [label, when]
        if params.get("for_date"):
            parts.append(f"for {params['for_date']}")
        if params.get("dry_run"):
            parts.append("dry-run")
        return " ".join(parts)

    return name


def current_run_id(prefix: str) -> str:
    """The Prefect flow-run id when inside a run, otherwise a fresh one."""
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    return str(run_id) if run_id else f"{prefix}-{uuid.uuid4()}"


def genesys_secret(genesys: GenesysSettings) -> str:
    """The Genesys client secret: from settings (environment) or a Prefect Secret block."""
    if genesys.client_secret is not None:
        return genesys.client_secret.get_secret_value()
    if genesys.client_secret_block:
        secret = _secret_block(genesys.client_secret_block)
        register_secret(secret)
        return secret
    raise ConfigurationError(
        "no Genesys client secret: set REMINDERS_GENESYS__CLIENT_SECRET or "
        "genesys.client_secret_block (a Prefect Secret block)"
    )


def _prefect_run_over(run_id: str) -> bool | None:
    """True when ``run_id`` is a Prefect flow run whose state is final (completed, failed,
    crashed, cancelled); None when it is not one or the API cannot say."""
    from prefect.context import FlowRunContext

    try:
        flow_run_id = uuid.UUID(run_id)
    except ValueError:
        return None
    if FlowRunContext.get() is None:
        return None
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(flow_run_id).state
    except Exception:
        return None
    return bool(state and state.is_final())


def begin_run(conn: Connection, **start: Any) -> list[str]:
    """Sweep dead runs (:func:`tasks.runs.sweep_abandoned`), then insert this run's row
    (:func:`tasks.outbox.start_run` with ``start``) stamped with its runner; returns the ids
    of the runs found abandoned."""
    abandoned = sweep_abandoned(
        conn, now=start["now"], by_run_id=start["run_id"], is_over=_prefect_run_over
    )
    start_run(conn, **start)
    conn.execute(
        sa.text("update runs set runner = :t where run_id = :r"),
        {"t": runner_token(), "r": start["run_id"]},
    )
    if abandoned:
        log.warning("marked %d dead run(s) abandoned: %s", len(abandoned), ", ".join(abandoned))
    return abandoned


@contextmanager
def recorded_run(
    settings: Settings,
    *,
    run_id: str,
    flow: str,
    as_of: datetime,
    dry_run: bool = False,
    parameters: dict[str, Any] | None = None,
    as_of_source: str | None = None,
) -> Iterator[Engine]:
    """A migrated warehouse engine with a ``runs`` row for this run around the block: the row
    starts ``running``; an exception marks it ``failed`` (``runs.error``: its type and masked
    text) and is re-raised; the caller records success with :func:`tasks.outbox.finish_run`."""
    engine = open_warehouse(settings)
    try:
        with engine.begin() as conn:
            begin_run(
                conn,
                run_id=run_id,
                flow=flow,
                as_of=as_of,
                now=utc_now(),
                dry_run=dry_run,
                parameters=parameters or {},
                scheduled_start=scheduled_start(),
                as_of_source=as_of_source,
            )
        yield engine
    except Exception as exc:
        with engine.begin() as conn:
            finish_run(conn, run_id=run_id, now=utc_now(), status="failed", error=error_text(exc))
        raise
    finally:
        engine.dispose()


def error_text(exc: BaseException, limit: int = 2000) -> str:
    """``Type: message`` of ``exc`` with personal data and secrets masked, for ``runs.error``,
    the CLI's error line and the failure artifact.

    A text over ``limit`` characters is cut and says so (``... [cut, N characters]``). A
    :class:`~tasks.errors.GateFailed` is never cut: its message is the report (every failed
    rule with its observed value and threshold, then the Data Docs path), bounded by the
    number of gate rules.
    """
    text = mask_text(f"{type(exc).__name__}: {exc}")
    if len(text) <= limit or isinstance(exc, GateFailed):
        return text
    return f"{text[:limit]}... [cut, {len(text)} characters]"


@contextmanager
def masked_errors() -> Iterator[None]:
    """Re-raise any exception with its text masked (:func:`tasks.masking.mask_exception`):
    Prefect copies an exception's text into the run's state message and the API."""
    try:
        yield
    except Exception as exc:
        masked = mask_exception(exc)
        if masked is exc:
            raise
        raise masked from None


F = TypeVar("F", bound=Callable[..., Any])


def masking_errors(fn: F) -> F:
    """Decorator form of :func:`masked_errors`, for a flow function (put it under ``@flow``)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with masked_errors():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


WAREHOUSE_LIMIT = "reminders-warehouse"
"""The Prefect global concurrency limit that serialises warehouse writers; create it once:
``prefect gcl create reminders-warehouse --limit 1`` (absent: runs go on unlimited)."""


@contextmanager
def warehouse_writer(settings: Settings) -> Iterator[None]:
    """Hold the writer slot of ``settings``' warehouse for the block: the Prefect global
    concurrency limit :data:`WAREHOUSE_LIMIT` (inside a flow run, when it exists; its lease
    lapses 5 minutes after a killed run) and a host file lock per warehouse URL (always; the
    kernel drops it when a process dies). Overlapping runs wait instead of failing."""
    import sys
    from contextlib import ExitStack

    key = settings.warehouse.url.get_secret_value() + "|" + (settings.warehouse.db_schema or "")
    in_flow_run = False
    if "prefect" in sys.modules:  # never import Prefect for a plain (--no-prefect) run
        from prefect.context import FlowRunContext

        in_flow_run = FlowRunContext.get() is not None
    with ExitStack() as stack:
        if in_flow_run:
            from prefect.concurrency.sync import concurrency

            stack.enter_context(
                concurrency(WAREHOUSE_LIMIT, occupy=1, timeout_seconds=3600, strict=False)
            )
        waited = stack.enter_context(host_lock(lock_path(settings.data_dir, "warehouse", key)))
        if waited > 1:
            log.info("waited %.0f s for another run writing the warehouse", waited)
        yield


def writes_warehouse(fn: F) -> F:
    """Decorator of a flow function (under ``@flow``): the body holds
    :func:`warehouse_writer` of the settings its ``overrides`` give, and then publishes the
    analysts' read-only snapshot of a DuckDB warehouse (succeeded or failed run alike)."""

    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        overrides = signature.bind(*args, **kwargs).arguments.get("overrides")
        settings = load_settings(**(overrides or {}))
        with warehouse_writer(settings):
            try:
                return fn(*args, **kwargs)
            finally:
                # Analysts read this copy, never the file the flows write (tasks/snapshot.py).
                publish_analyst_snapshot(settings.warehouse.url.get_secret_value())

    return wrapper  # type: ignore[return-value]


def open_warehouse(settings: Settings) -> Engine:
    """An engine on the configured warehouse, migrated to the latest schema."""
    engine = make_engine(
        settings.warehouse.url.get_secret_value(), schema=settings.warehouse.db_schema
    )
    migrate(engine)
    return engine
