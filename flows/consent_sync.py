"""consent-sync: the weekly consent round-trip with the CRM and Genesys (issue 12, items 5-6).

1. Reads the sources (extract -> normalize) and folds consent with the planning rules, the
   captured keyword and CRM events included (``tasks.alerts.Directory``).
2. Imports the CRM's consent changes since the last import as ``consent_events`` (source
   ``crm``); conflicts resolve by time (latest event per customer and channel; ties opt-out).
3. Exports the consent changes captured here since the last export for the CRM: a CSV file
   under ``alerts.crm_export_dir`` (default ``<data_dir>/crm``) or, with
   ``alerts.crm_export_url``, the table ``crm_consent_changes`` of that SQLAlchemy target.
4. Publishes the consent state and the template versions to the Architect data tables
   ``<prefix>-consent`` and ``<prefix>-templates`` (created with their schema; changed rows
   only), so Genesys' own flows check the same consent.
5. Reports the numbers opted out at the carrier or in Genesys that the CRM still holds
   contactable (a table artifact in Prefect; also in the result).

Schedule: weekly (suggested ``prefect.yaml`` deployment ``consent-sync-weekly``, cron
``0 5 * * 1`` UTC); ``reminders alerts consent-sync`` runs it once.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_table_artifact
from prefect.context import FlowRunContext

from flows.common import genesys_secret, parse_utc_instant, settings_with
from tasks.alerts import directory_from_frames
from tasks.consent_sync import (
    CONSENT_COLUMNS,
    TEMPLATE_COLUMNS,
    captured_events,
    consent_rows,
    contactable_gap,
    export_changes,
    import_changes,
    publish,
    template_rows,
)
from tasks.extract import extract_sources
from tasks.genesys import client_from_settings
from tasks.normalize import normalize
from tasks.render import load_templates
from tasks.settings import Settings
from tasks.warehouse import make_engine, migrate

__all__ = ["consent_sync", "run_consent_sync"]


def run_consent_sync(settings: Settings, *, now: Any, publish_to_genesys: bool = True) -> dict:
    """One round trip (see the module docstring)."""
    engine = make_engine(
        settings.warehouse.url.get_secret_value(), schema=settings.warehouse.db_schema
    )
    migrate(engine)
    fresh = normalize(extract_sources(settings.sources), as_of=now, parsing=settings.parsing)
    imported = import_changes(engine, fresh.consent_events, now=now)
    directory = directory_from_frames(
        fresh.customers, fresh.consent_events.head(0), unclear=fresh.consent_unclear, as_of=now
    ).refreshed(engine, now=now)
    a = settings.alerts
    exported = export_changes(
        engine,
        now=now,
        folder=a.crm_export_dir or settings.data_dir / "crm",
        target_url=a.crm_export_url.get_secret_value() if a.crm_export_url else None,
    )
    published: dict[str, Any] = {}
    if publish_to_genesys:
        rows = consent_rows(
            directory,
            captured_events(engine),
            email_requires_opt_in=settings.cadence.email_requires_opt_in,
        )
        with client_from_settings(settings.genesys, genesys_secret(settings.genesys)) as client:
            published["consent"] = publish(
                client,
                f"{a.datatable_prefix}-consent",
                CONSENT_COLUMNS,
                rows,
                "Consent per address, published by payment-reminders consent-sync",
            )
            published["templates"] = publish(
                client,
                f"{a.datatable_prefix}-templates",
                TEMPLATE_COLUMNS,
                template_rows(load_templates(settings.render.templates_dir)),
                "Current template versions of payment-reminders",
            )
    gap = contactable_gap(engine, directory, fresh.consent_events)
    engine.dispose()
    return {
        "imported": imported,
        "exported": exported,
        "published": published,
        "still_contactable_in_crm": gap.to_dicts(),
    }


@flow(name="consent-sync")
def consent_sync(now: str | None = None, overrides: dict[str, Any] | None = None) -> dict:
    settings = settings_with(overrides)
    result = run_consent_sync(settings, now=parse_utc_instant(now))
    if FlowRunContext.get() is not None:
        create_table_artifact(
            key="consent-gap",
            table=result["still_contactable_in_crm"] or [{"address": "", "customer_id": ""}],
            description="opted out at the carrier or in Genesys, still contactable in the CRM",
        )
    return result
