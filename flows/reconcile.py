"""reconcile-daily and reconcile-billing: what we sent, what reached people, what we were billed.

**reconcile-daily** (deployed daily, after the 72 h finality window): the day reconciled is
``day`` or, by default, the UTC date 72 hours before ``now`` (the newest day that is final).
It reads the Genesys attempts of recently handed-off messages (contact-list exports, contact
lookups, agentless message status) into ``attempts``, loads the given carrier files into
``carrier_records`` (``tasks.carriers``; any layout), moves ``sent`` messages attempted that
day to ``delivered`` / ``undelivered`` from matched carrier records, materializes the day into
``reconcile_results`` (:func:`tasks.reconcile.reconcile_days`), writes a markdown summary
and an SVG chart (sent, delivered, billed per day) under ``<data_dir>/reconcile/<day>/``, and
publishes both as a Prefect markdown artifact. Every load is idempotent: re-running a day
changes nothing.

**reconcile-billing** (monthly): loads carrier invoice files (Twilio Usage Records JSON or the
generic invoice CSV) and reports each billing period against the carrier's own per-message
records (``reconcile_billing_period``), with the period's discrepancies.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import phonenumbers
import polars as pl
from prefect import flow
from prefect.artifacts import create_markdown_artifact
from sqlalchemy.engine import Engine

from flows.common import (
    current_run_id,
    genesys_secret,
    parse_utc_instant,
    recorded_run,
    settings_with,
    utc_now,
)
from tasks.attempts import collect_attempts_from_genesys
from tasks.carriers import (
    load_carrier_invoices,
    load_carrier_records,
    load_layout,
    parse_carrier_file,
    parse_invoice_csv,
    parse_twilio_usage_records,
)
from tasks.genesys import client_from_settings
from tasks.outbox import finish_run
from tasks.reconcile import (
    chart_svg,
    daily_totals,
    discrepancies,
    load_rates,
    period_rows,
    reconcile_days,
    status_counts,
    summary_markdown,
    update_delivery,
)
from tasks.warehouse import make_engine, migrate

__all__ = [
    "demo_reconcile",
    "final_day",
    "inject_discrepancies",
    "load_carrier_files",
    "reconcile_billing",
    "reconcile_daily",
]

FINALITY = timedelta(hours=72)


def final_day(now: datetime) -> date:
    """The newest UTC day whose every send is at least 72 hours old at ``now``."""
    return (now - FINALITY - timedelta(days=1)).date()


def load_carrier_files(
    engine: Engine, files: Sequence[str], layout: str, *, loaded_at: datetime
) -> dict[str, int]:
    """Parse and load carrier record files (one transaction per file); summed counts."""
    totals: dict[str, int] = {}
    spec = load_layout(layout)
    for name in files:
        path = Path(name)
        parsed = parse_carrier_file(
            path.read_bytes(), spec, source_file=path.name, loaded_at=loaded_at
        )
        with engine.begin() as conn:
            for key, value in load_carrier_records(conn, parsed).items():
                totals[key] = totals.get(key, 0) + int(value)
    return totals


def _publish(folder: Path, key: str, markdown: str, svg: str | None) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"summary": str(folder / "summary.md")}
    text = markdown
    if svg is not None:
        chart = folder / "chart.svg"
        chart.write_text(svg, encoding="utf-8")
        paths["chart"] = str(chart)
        encoded = base64.b64encode(svg.encode("utf-8")).decode("ascii")
        text += f"\n![sent, delivered, billed per day](data:image/svg+xml;base64,{encoded})\n"
    (folder / "summary.md").write_text(markdown, encoding="utf-8")
    create_markdown_artifact(key=key, markdown=text)
    return paths


@flow(name="reconcile-daily", log_prints=True)
def reconcile_daily(
    now: str | None = None,
    day: str | None = None,
    carrier_files: list[str] | None = None,
    carrier_layout: str = "twilio",
    carrier_glob: str | None = None,
    read_genesys: bool = True,
    days_back: int = 0,
    chart_days: int = 14,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Reconcile ``day`` (default: the newest final one) and the ``days_back`` days before it;
    carrier files are ``carrier_files`` plus those matching ``carrier_glob`` (``{day}`` is
    replaced by the day, e.g. ``/srv/carriers/twilio/{day}.json.gz``), read with
    ``carrier_layout``;
    delivery is updated for every attempt day up to ``day`` (only ``sent`` messages move).
    Returns statuses, loads, delivery moves and the paths of the summary and the chart."""
    settings = settings_with(overrides)
    at = parse_utc_instant(now)
    target = date.fromisoformat(day) if day else final_day(at)
    run_id = current_run_id("reconcile")
    with recorded_run(
        settings,
        run_id=run_id,
        flow="reconcile-daily",
        as_of=at,
        parameters={"day": target.isoformat(), "carrier_layout": carrier_layout},
    ) as engine:
        attempts: dict[str, int] = {}
        if read_genesys and (settings.genesys.base_url or settings.genesys.region):
            with client_from_settings(settings.genesys, genesys_secret(settings.genesys)) as client:
                attempts = collect_attempts_from_genesys(engine, client, now=at, run_id=run_id)
        files = list(carrier_files or [])
        if carrier_glob:
            pattern = Path(carrier_glob.replace("{day}", target.isoformat()))
            files += sorted(str(p) for p in pattern.parent.glob(pattern.name))
        carriers = load_carrier_files(engine, files, carrier_layout, loaded_at=at)
        with engine.begin() as conn:
            delivery = update_delivery(conn, run_id=run_id, now=at, through=target)
            covered = [target - timedelta(days=i) for i in range(days_back, -1, -1)]
            materialized = reconcile_days(conn, covered)
            statuses = status_counts(conn, covered)
            days = [target - timedelta(days=i) for i in range(max(chart_days, 1) - 1, -1, -1)]
            daily = daily_totals(conn, days)
            problems = discrepancies(conn, covered)
        first = covered[0].isoformat()
        title = target.isoformat() if days_back == 0 else f"{first} to {target.isoformat()}"
        markdown = summary_markdown(
            f"reconcile-daily {title}",
            statuses,
            daily.filter(pl.col("day").is_in(covered)),
            problems,
            delivery=delivery,
            chart="chart.svg",
        )
        paths = _publish(
            settings.data_dir / "reconcile" / target.isoformat(),
            "reconcile-daily",
            markdown,
            chart_svg(daily),
        )
        with engine.begin() as conn:
            finish_run(conn, run_id=run_id, now=utc_now(), status="succeeded")
    print(markdown)
    return {
        "run_id": run_id,
        "day": title,
        "statuses": statuses,
        "attempts_loaded": attempts,
        "carrier_records": carriers,
        "delivery": delivery,
        "reconcile_results": materialized,
        **paths,
    }


def demo_rates(numbers: Sequence[str]) -> pl.DataFrame:
    """The sandbox carrier's rate card (genesys_sandbox/carrier.py): 0.0079 USD per segment to
    US and Canadian numbers, 0.0450 elsewhere, which includes the +1 numbers of other NANP
    regions (Guam, Puerto Rico, Jamaica, ...): one +1NPA prefix row for each such area code
    among ``numbers`` (one phonenumbers call per distinct area code)."""
    prefixes = {"+1": 7_900, "+": 45_000}
    for npa in sorted({n[:5] for n in numbers if n.startswith("+1") and len(n) == 12}):
        try:
            region = phonenumbers.region_code_for_number(phonenumbers.parse(npa + "5550100"))
        except phonenumbers.NumberParseException:
            continue
        if region not in ("US", "CA"):
            prefixes[npa] = 45_000
    return pl.DataFrame(
        {
            "carrier": ["twilio"] * len(prefixes),
            "destination_prefix": list(prefixes),
            "price_micros_per_segment": list(prefixes.values()),
            "currency": ["USD"] * len(prefixes),
            "valid_from": [date(2026, 1, 1)] * len(prefixes),
            "valid_to": [None] * len(prefixes),
        },
        schema_overrides={"valid_to": pl.Date},
    )


def inject_discrepancies(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict]:
    """Four known discrepancies in a copy of Twilio Message records (for the demo): the first
    priced record dropped (attempted_not_billed), the second overcharged by 0.001
    (price_mismatch), the third's segments doubled (segment_mismatch), and a record to a number
    nobody messaged (billed_not_attempted). Returns the records and what was done."""
    out = [dict(m) for m in messages]
    priced = [i for i, m in enumerate(out) if m.get("price") not in (None, "0.00000")]
    done: dict[str, str] = {}
    if len(priced) >= 3:
        second, third = out[priced[1]], out[priced[2]]
        second["price"] = f"{Decimal(second['price']) - Decimal('0.001'):.5f}"
        done["price_mismatch"] = second["sid"]
        third["num_segments"] = str(2 * int(third["num_segments"]))
        third["price"] = f"{2 * Decimal(third['price']):.5f}"
        done["segment_mismatch"] = third["sid"]
        extra = dict(out[priced[0]])
        extra["sid"] = "SM" + "f" * 32
        extra["to"] = "+13175550199"
        extra["body"] = "not one of ours"
        out.append(extra)
        done["billed_not_attempted"] = extra["sid"]
        done["attempted_not_billed"] = out[priced[0]]["sid"]
        del out[priced[0]]
    return out, done


def demo_reconcile(
    folder: Path,
    records: list[dict[str, Any]],
    *,
    now: datetime,
    day: date,
    overrides: dict[str, Any],
    inject: bool = True,
    days_back: int = 0,
) -> dict[str, Any]:
    """The demo's last step: the sandbox carrier's Twilio records (with known discrepancies
    injected) written as a carrier file, the sandbox rate card loaded, then reconcile-daily."""
    if inject:
        records, injected = inject_discrepancies(records)
    else:
        injected = {}
    carriers = folder / "carriers"
    carriers.mkdir(parents=True, exist_ok=True)
    path = carriers / f"twilio-messages-{day.isoformat()}.json"
    path.write_text(json.dumps({"messages": records}), encoding="utf-8")
    engine = make_engine(str(overrides["warehouse"]["url"]))
    try:
        migrate(engine)
        with engine.begin() as conn:
            load_rates(conn, demo_rates([str(m.get("to") or "") for m in records]))
    finally:
        engine.dispose()
    result = reconcile_daily(
        now=now.isoformat(),
        day=day.isoformat(),
        carrier_files=[str(path)],
        carrier_layout="twilio",
        days_back=days_back,
        overrides=overrides,
    )
    return result | {"injected": injected}


@flow(name="reconcile-billing", log_prints=True)
def reconcile_billing(
    period: str | None = None,
    invoice_files: list[str] | None = None,
    invoice_format: str = "twilio_usage",
    carrier: str = "twilio",
    now: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Load invoice files and report billing periods starting in ``period`` (``YYYY-MM``;
    default the previous calendar month) against the carrier records."""
    settings = settings_with(overrides)
    at = parse_utc_instant(now)
    if period:
        start = date.fromisoformat(f"{period}-01")
    else:
        first = at.date().replace(day=1)
        start = (first - timedelta(days=1)).replace(day=1)
    run_id = current_run_id("billing")
    with recorded_run(
        settings,
        run_id=run_id,
        flow="reconcile-billing",
        as_of=at,
        parameters={"period": start.isoformat(), "invoice_format": invoice_format},
    ) as engine:
        loaded: dict[str, int] = {}
        for name in invoice_files or []:
            path = Path(name)
            data = path.read_bytes()
            if invoice_format == "twilio_usage":
                parsed = parse_twilio_usage_records(
                    data, source_file=path.name, loaded_at=at, carrier=carrier
                )
            else:
                parsed = parse_invoice_csv(
                    data, carrier=carrier, source_file=path.name, loaded_at=at
                )
            with engine.begin() as conn:
                for key, value in load_carrier_invoices(conn, parsed).items():
                    loaded[key] = loaded.get(key, 0) + int(value)
        end = (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
        with engine.begin() as conn:
            periods = period_rows(conn, start)
            statuses = status_counts(conn, days)
            daily = daily_totals(conn, days)
            problems = discrepancies(conn, days)
        markdown = summary_markdown(
            f"reconcile-billing {start.isoformat()[:7]}",
            statuses,
            daily,
            problems,
            periods=periods,
            chart="chart.svg",
        )
        paths = _publish(
            settings.data_dir / "reconcile" / f"billing-{start.isoformat()[:7]}",
            "reconcile-billing",
            markdown,
            chart_svg(daily),
        )
        with engine.begin() as conn:
            finish_run(conn, run_id=run_id, now=utc_now(), status="succeeded")
    print(markdown)
    return {
        "run_id": run_id,
        "period": start.isoformat()[:7],
        "invoices": loaded,
        "periods": periods.with_columns(
            periods["period_start"].cast(str), periods["period_end"].cast(str)
        ).to_dicts(),
        "statuses": statuses,
        **paths,
    }
