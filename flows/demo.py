"""demo: the whole pipeline on generated sample data, in a fresh DuckDB file.

Generates about 1,000 messy customers (seeded), writes them as CSV under
``<data_dir>/demo/sample``, runs build-reminders against ``<data_dir>/demo/warehouse.duckdb``,
then walks the push stage through the next 24 hours, one hourly run at a time, so each zone's
waves turn ``ready`` when their local window opens.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect import flow

from flows.build_reminders import build_reminders
from flows.common import parse_utc_instant, settings_with
from flows.push_waves import push_waves
from tasks.sample_data import generate

__all__ = ["demo", "demo_overrides"]


def demo_overrides(folder: Path) -> dict[str, Any]:
    """Settings overrides pointing every source and the warehouse into ``folder``."""
    sample = folder / "sample"
    return {
        "warehouse": {"url": f"duckdb:///{folder / 'warehouse.duckdb'}"},
        "sources": {
            name: {"kind": "csv", "path": str(sample / f"{name}.csv")}
            for name in ("customers", "invoices", "consent_events", "contact_history")
        },
    }


@flow(name="demo")
def demo(
    customers: int = 1000,
    as_of: str = "2026-11-23T06:00:00Z",
    seed: int = 7,
    hours: int = 24,
) -> dict[str, Any]:
    """Run the demo; returns the build result and the waves made ready per hourly push."""
    settings = settings_with(None)
    folder = settings.data_dir / "demo"
    if folder.exists():
        shutil.rmtree(folder)
    at = parse_utc_instant(as_of)
    generate(customers, seed=seed, as_of=at.date()).write(folder / "sample", "csv")
    overrides = demo_overrides(folder)
    built = build_reminders(as_of=at.isoformat(), overrides=overrides)
    pushes = []
    for hour in range(hours):
        now = (at + timedelta(hours=hour)).isoformat()
        pushes.append(push_waves(now=now, overrides=overrides))
    return {"build": built, "pushes": pushes, "warehouse": str(folder / "warehouse.duckdb")}


if __name__ == "__main__":
    demo()
