"""The ``reminders`` command: every flow as a plain local command, no Prefect server needed.

With ``PREFECT_API_URL`` unset, the command starts a temporary Prefect server as its own
child, which the kernel stops when the command dies, even by SIGKILL (flows/local_server.py).
Its state lives under ``<data_dir>/prefect`` unless ``PREFECT_HOME`` says otherwise, so runs
never touch the user's own Prefect profile.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

HELP = (
    "Payment reminders: every flow as a local command. Without PREFECT_API_URL a temporary "
    "Prefect server runs as a child of the command and dies with it. Errors print one line; "
    "--debug prints the traceback."
)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help=HELP,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(no_args_is_help=True, help="Inspect the effective settings.")
app.add_typer(config_app, name="config")

_DEBUG = {"on": False}


@app.callback()
def main(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="Settings file (TOML); default REMINDERS_CONFIG or ./reminders.toml."
        ),
    ] = None,
    debug: Annotated[bool, typer.Option(help="Print full tracebacks.")] = False,
) -> None:
    """Payment reminders (see --help of each command)."""
    if config is not None:
        if not config.is_file():
            raise typer.BadParameter(f"{config} is not a file", param_hint="--config")
        os.environ["REMINDERS_CONFIG"] = str(config.resolve())
    _DEBUG["on"] = debug
    os.environ["REMINDERS_CLI_DEBUG"] = "1" if debug else ""


def prefect_home() -> Path:
    """``<data_dir>/prefect`` of the effective settings (environment, then the settings
    file named by ``--config`` / ``REMINDERS_CONFIG``), where a command's Prefect state goes
    unless ``PREFECT_HOME`` is set."""
    try:
        from tasks.settings import load_settings

        data_dir = load_settings().data_dir
    except Exception:  # invalid settings are reported by the command itself
        data_dir = Path(os.environ.get("REMINDERS_DATA_DIR", "data"))
    return (data_dir / "prefect").resolve()


def _prefect_env(quiet: bool) -> None:
    os.environ.setdefault("PREFECT_HOME", str(prefect_home()))
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if quiet:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from flows.local_server import start_temporary_server
    from flows.logs import use_project_logging

    use_project_logging()  # flows/logging.yml: masking on every handler, project loggers to API
    # No PREFECT_API_URL: a temporary server that dies with this command (flows/local_server).
    start_temporary_server()
    import prefect.main  # noqa: F401  (configures Prefect's log handlers from flows/logging.yml)

    from tasks.masking import install_masking

    install_masking()
    if not _DEBUG["on"]:
        _quiet_tracebacks()


class _NoTraceback:
    """A console-handler filter: the error line without its traceback (``--debug`` keeps it).
    Runs after the API handler has sent the full (masked) record to Prefect."""

    def filter(self, record: Any) -> bool:
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def _quiet_tracebacks() -> None:
    import logging

    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not any(
            isinstance(f, _NoTraceback) for f in handler.filters
        ):
            handler.addFilter(_NoTraceback())


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


@app.command()
def demo(
    customers: Annotated[int, typer.Option(help="Sample customers to generate.")] = 1000,
    as_of: Annotated[str, typer.Option(help="Run time, ISO-8601 UTC.")] = "2026-11-23T06:00:00Z",
    seed: Annotated[int, typer.Option(help="Seed of the sample data.")] = 7,
    hours: Annotated[int, typer.Option(help="Hourly push runs to simulate.")] = 24,
) -> None:
    """Generate sample data, build the reminders, push the waves hour by hour, print a report."""
    _prefect_env(quiet=True)
    from flows.demo import demo as demo_flow
    from flows.report import print_demo_report

    result = demo_flow(customers=customers, as_of=as_of, seed=seed, hours=hours)
    print_demo_report(result)


@app.command()
def build(
    as_of: Annotated[str | None, typer.Option(help="ISO-8601 UTC; default now.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Write decisions only, no outbox.")] = False,
    for_date: Annotated[
        str | None,
        typer.Option(
            help="Plan this local date (YYYY-MM-DD) in every zone, whatever the run time; "
            "zones whose window has closed are excluded window_passed."
        ),
    ] = None,
) -> None:
    """Run build-reminders once."""
    _prefect_env(quiet=False)
    from flows.build_reminders import build_reminders

    _echo_json(build_reminders(as_of=as_of, dry_run=dry_run, for_date=for_date))


@app.command()
def push(
    now: Annotated[str | None, typer.Option(help="ISO-8601 UTC; default now.")] = None,
    horizon_minutes: Annotated[int, typer.Option(help="Look-ahead for opening waves.")] = 60,
    dry_run: Annotated[bool, typer.Option(help="Report, change nothing.")] = False,
    recheck: Annotated[bool, typer.Option(help="Re-read sources for payments/opt-outs.")] = True,
    prefect: Annotated[bool, typer.Option(help="Run as a Prefect flow (default).")] = True,
) -> None:
    """Run push-waves once: hand the waves opening within the horizon to Genesys."""
    from tasks.failpoints import arm

    arm(os.environ.get("REMINDERS_FAILPOINT"))
    if prefect:
        _prefect_env(quiet=False)
        from flows.push_waves import push_waves

        _echo_json(
            push_waves(now=now, horizon_minutes=horizon_minutes, dry_run=dry_run, recheck=recheck)
        )
        return
    import logging

    from tasks.masking import MaskingFilter

    handler = logging.StreamHandler()
    handler.addFilter(MaskingFilter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    from flows.common import parse_utc_instant, settings_with, warehouse_writer
    from flows.push_waves import run_push

    settings = settings_with(None, flow="push-waves", needs=() if dry_run else ("genesys",))
    with warehouse_writer(settings):
        summary = run_push(
            settings,
            now=parse_utc_instant(now),
            as_of_source="parameter" if now else "clock",
            horizon_minutes=horizon_minutes,
            dry_run=dry_run,
            recheck=recheck,
            run_id=f"push-{uuid.uuid4()}",
        )
        from tasks.snapshot import publish_analyst_snapshot

        publish_analyst_snapshot(settings.warehouse.url.get_secret_value())
    _echo_json(summary)


@app.command("sample-data")
def sample_data(
    out: Annotated[Path, typer.Option(help="Folder to write into.")] = Path("data/sample"),
    customers: Annotated[int, typer.Option(help="Customers to generate.")] = 1000,
    as_of: Annotated[str, typer.Option(help="Date the data is relative to.")] = "2026-11-23",
    seed: Annotated[int, typer.Option()] = 7,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
) -> None:
    """Write a seeded, messy sample of the canonical inputs."""
    from datetime import date

    from tasks.sample_data import generate

    paths = generate(customers, seed=seed, as_of=date.fromisoformat(as_of)).write(
        out,
        fmt,  # type: ignore[arg-type]
    )
    _echo_json({k: str(v) for k, v in paths.items()})


@app.command()
def migrate() -> None:
    """Create or upgrade the warehouse tables and views."""
    from tasks.settings import load_settings
    from tasks.warehouse import make_engine
    from tasks.warehouse import migrate as run_migrations

    settings = load_settings()
    engine = make_engine(
        settings.warehouse.url.get_secret_value(), schema=settings.warehouse.db_schema
    )
    _echo_json({"applied": run_migrations(engine)})


@app.command("collect-outcomes")
def collect_outcomes(
    now: Annotated[str | None, typer.Option(help="ISO-8601 UTC; default now.")] = None,
) -> None:
    """Run collect-outcomes once: read Genesys outcomes of pushed contacts into the outbox."""
    _prefect_env(quiet=False)
    from flows.collect_outcomes import collect_outcomes as collect_flow

    _echo_json(collect_flow(now=now))


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings, secrets masked, and where each value came from."""
    from flows.config_view import settings_sources
    from tasks.settings import load_settings

    rows = settings_sources(load_settings())
    width = max(len(k) for k, _, _ in rows)
    for key, value, source in rows:
        typer.echo(f"{key:<{width}}  {value}  [{source}]")


def run() -> None:
    """Entry point: expected errors print one or two lines (no traceback) unless --debug."""
    import sys

    try:
        app(standalone_mode=False)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # the one place a command's error becomes its output
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if _DEBUG["on"]:
            raise
        from flows.common import error_text

        typer.echo(f"error: {error_text(exc, 400)}", err=True)
        typer.echo("(run again with --debug for the traceback)", err=True)
        sys.exit(1)


alerts_app = typer.Typer(no_args_is_help=True, help="Real-time payment alerts and inbound SMS.")
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("serve")
def alerts_serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8780,
) -> None:
    """Serve POST /events, /inbound/genesys, /inbound/twilio and run the alert worker."""
    import logging

    from tasks.failpoints import arm
    from tasks.masking import MaskingFilter

    arm(os.environ.get("REMINDERS_FAILPOINT"))

    handler = logging.StreamHandler()
    handler.addFilter(MaskingFilter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    from flows.alerts_service import serve
    from flows.common import settings_with

    serve(settings_with(None), host=host, port=port)


@alerts_app.command("consent-sync")
def alerts_consent_sync(
    now: Annotated[str | None, typer.Option(help="ISO-8601 UTC; default now.")] = None,
) -> None:
    """Run consent-sync once: export consent changes for the CRM, import the CRM's, report."""
    _prefect_env(quiet=False)
    from flows.consent_sync import consent_sync

    _echo_json(consent_sync(now=now))


if __name__ == "__main__":
    run()
