"""Benchmark build-reminders: wall time per stage and peak memory at N customers.

    ./dev bench benchmarks/build_reminders.py --customers 100000 [--warehouse postgres]

Generates the sample inputs once (not timed), then runs the build in a child process so its
peak RSS is its own: extract (CSV) -> normalize -> plan (consent, eligibility, render,
stagger) -> write runs/decisions/quarantine/messages to the warehouse. Prints one line per
stage and a summary. Figures vary with the machine's load: compare ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

AS_OF = datetime(2026, 11, 23, 6, 0)


def child(folder: Path, url: str, schema: str | None) -> None:
    import polars as pl

    from tasks.extract import extract_sources
    from tasks.normalize import normalize
    from tasks.outbox import finish_run, load_prior, save_plan, start_run
    from tasks.plan import build_plan
    from tasks.render import load_templates
    from tasks.settings import Settings
    from tasks.warehouse import make_engine, migrate

    settings = Settings.model_validate(
        {
            "sources": {
                n: {"kind": "csv", "path": str(folder / f"{n}.csv")}
                for n in ("customers", "invoices", "consent_events", "contact_history")
            },
            "warehouse": {"url": url, "db_schema": schema},
        }
    )
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    extracted = extract_sources(settings.sources)
    stages["extract"] = time.perf_counter() - t0
    t = time.perf_counter()
    normalized = normalize(extracted, as_of=AS_OF, parsing=settings.parsing)
    stages["normalize"] = time.perf_counter() - t
    engine = make_engine(url, schema=schema)
    migrate(engine)
    with engine.begin() as conn:
        start_run(
            conn, run_id="bench", flow="bench", as_of=AS_OF, now=AS_OF, dry_run=False, parameters={}
        )
        prior, tokens = load_prior(conn, as_of=AS_OF)
    t = time.perf_counter()
    plan = build_plan(
        extracted,
        normalized,
        prior,
        as_of=AS_OF,
        settings=settings,
        templates=load_templates(),
        existing_tokens=tokens,
    )
    stages["plan"] = time.perf_counter() - t
    t = time.perf_counter()
    with engine.begin() as conn:
        save_plan(conn, plan, run_id="bench", now=AS_OF, dry_run=False)
        finish_run(
            conn,
            run_id="bench",
            now=AS_OF,
            status="succeeded",
            counts=plan.counts,
            accounting_ok=plan.accounting.ok,
        )
    stages["write"] = time.perf_counter() - t
    stages["total"] = time.perf_counter() - t0
    engine.dispose()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "stages_s": {k: round(v, 2) for k, v in stages.items()},
                "peak_rss_mib": round(peak_mib),
                "rows_in": plan.rows_in,
                "decisions": plan.decisions.height,
                "messages": plan.messages.height,
                "counts": plan.counts,
                "polars": pl.__version__,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--warehouse", choices=["duckdb", "postgres"], default="duckdb")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        folder, url, schema = args.child
        child(Path(folder), url, schema or None)
        return

    from tasks.sample_data import generate

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        generate(args.customers, seed=args.seed, as_of=date(2026, 11, 23)).write(folder, "csv")
        seconds = time.perf_counter() - t
        print(f"generated {args.customers:,} customers in {seconds:.1f} s (not timed below)")
        schema = ""
        if args.warehouse == "duckdb":
            url = f"duckdb:///{folder / 'warehouse.duckdb'}"
        else:
            url, schema = args.pg_url, f"bench_{int(time.time())}"
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(folder), url, schema],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        if args.warehouse == "postgres":
            import sqlalchemy as sa

            engine = sa.create_engine(url)
            with engine.begin() as conn:
                conn.exec_driver_sql(f"drop schema if exists {schema} cascade")
    result = json.loads(out.strip().splitlines()[-1])
    print(f"build-reminders at {args.customers:,} customers, warehouse {args.warehouse}:")
    for stage, seconds in result["stages_s"].items():
        print(f"  {stage:<10} {seconds:8.2f} s")
    print(f"  peak RSS   {result['peak_rss_mib']:8d} MiB")
    print(f"  rows in    {result['rows_in']}")
    print(
        f"  decisions  {result['decisions']:,}  messages {result['messages']:,}  {result['counts']}"
    )


if __name__ == "__main__":
    main()
