"""Scale benchmark (issue 11 item 5): build-reminders at a million customers, cold and warm.

    ./dev bench benchmarks/scale_1m.py [--customers 1000000] [--warehouse duckdb|postgres]
        [--no-next] [--no-peer] [--folder DIR] [--profile RUN]

Generates the sample inputs once (not timed) plus a next-day copy with 1 % of the customers'
phone numbers changed, then runs the build three times in child processes (each its own
peak RSS) against one warehouse: ``cold`` (empty phone cache, empty warehouse), ``warm`` (the
same day again: every phone cached, the plan refreshed in place) and ``next day`` (as_of + 1
day, 1 % new phones). In the same run it times a bare-polars bound (the same joins and filters,
phones taken as given, no quarantine, no rendering) and the pandas peer
(``benchmarks/pandas_peer.py``: the same row rules, eligibility, render guards and stagger in
vectorised pandas, phones pre-parsed) on the same files, in their own processes, and asserts
that the peer's planned set (customer, invoice, channel, send time) is the cold run's: the
script exits non-zero after the table when they differ. Prints one table.
Figures vary with the machine's load: compare ratios from one run.

While iterating: ``--no-next`` skips the next-day run; ``--no-peer`` skips the bound and the
pandas peer (and so the planned-set check); ``--folder DIR`` keeps the generated inputs in DIR
and reuses them when present (the warehouse is made afresh each time); ``--profile warm`` runs
that child (``cold``, ``warm`` or ``next``) under cProfile and writes ``DIR/<run>.prof`` (needs
``--folder``). With ``SCALE_1M_DUMP=DIR`` in the environment every run writes its normalized
customers, quarantine, new phones, decisions and messages there as Parquet (not timed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

AS_OF = datetime(2026, 11, 23, 6, 0)
INPUTS = ("customers", "invoices", "consent_events", "contact_history")


def child(folder: Path, url: str, schema: str | None, as_of: datetime, run_id: str) -> None:
    profile = os.environ.get("SCALE_1M_PROFILE")
    if profile:
        import cProfile

        cProfile.runctx(
            "_child(folder, url, schema, as_of, run_id)", globals(), locals(), filename=profile
        )
    else:
        _child(folder, url, schema, as_of, run_id)


def _child(folder: Path, url: str, schema: str | None, as_of: datetime, run_id: str) -> None:
    import polars as pl

    from tasks.extract import extract_sources
    from tasks.normalize import normalize
    from tasks.outbox import finish_run, load_prior, save_plan, start_run
    from tasks.phones import load_phone_cache, save_phone_cache
    from tasks.plan import build_plan
    from tasks.render import load_templates
    from tasks.settings import Settings
    from tasks.warehouse import make_engine, migrate

    settings = Settings.model_validate(
        {
            "sources": {n: {"kind": "csv", "path": str(folder / f"{n}.csv")} for n in INPUTS},
            "warehouse": {"url": url, "db_schema": schema},
        }
    )
    stages: dict[str, float] = {}
    engine = make_engine(url, schema=schema)
    migrate(engine)
    t0 = time.perf_counter()
    extracted = extract_sources(settings.sources)
    stages["extract"] = time.perf_counter() - t0
    t = time.perf_counter()
    with engine.begin() as conn:
        cache = load_phone_cache(conn)
    stages["cache read"] = time.perf_counter() - t
    t = time.perf_counter()
    normalized = normalize(extracted, as_of=as_of, parsing=settings.parsing, phone_cache=cache)
    stages["normalize"] = time.perf_counter() - t
    t = time.perf_counter()
    with engine.begin() as conn:
        start_run(
            conn, run_id=run_id, flow="bench", as_of=as_of, now=as_of, dry_run=False, parameters={}
        )
        prior, tokens = load_prior(conn, as_of=as_of)
    stages["prior read"] = time.perf_counter() - t
    t = time.perf_counter()
    plan = build_plan(
        extracted,
        normalized,
        prior,
        as_of=as_of,
        settings=settings,
        templates=load_templates(),
        existing_tokens=tokens,
    )
    stages["plan"] = time.perf_counter() - t
    t = time.perf_counter()
    with engine.begin() as conn:
        outbox = save_plan(conn, plan, run_id=run_id, now=as_of, dry_run=False)
        save_phone_cache(conn, normalized.new_phones)
        finish_run(
            conn,
            run_id=run_id,
            now=as_of,
            status="succeeded",
            counts=plan.counts,
            accounting_ok=plan.accounting.ok,
        )
    stages["write"] = time.perf_counter() - t
    stages["total"] = time.perf_counter() - t0
    engine.dispose()
    dump = os.environ.get("SCALE_1M_DUMP")
    if dump:  # not timed: this run's outputs, to compare two versions of the code
        Path(dump).mkdir(parents=True, exist_ok=True)
        for name, frame in (
            ("customers", normalized.customers),
            ("quarantine", normalized.quarantine),
            ("new_phones", normalized.new_phones),
            ("decisions", plan.decisions),
            ("messages", plan.messages),
        ):
            frame.write_parquet(Path(dump) / f"{run_id}_{name}.parquet")
    if run_id == "cold":  # for the pandas peer (not timed): the planned set and parsed phones
        planned = plan.decisions.filter(pl.col("status") == "planned")
        planned.select("customer_id", "invoice_id", "channel", "send_at_utc").write_parquet(
            folder.parent / "planned_pipeline.parquet"
        )
        phones = pl.concat([cache, normalized.new_phones], how="diagonal_relaxed")
        phones.select("raw", "region", "e164", "zones", "calling_code", "line").write_parquet(
            folder.parent / "phones.parquet"
        )
    print(
        json.dumps(
            {
                "stages_s": {k: round(v, 2) for k, v in stages.items()},
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "phones_parsed": normalized.new_phones.height,
                "phones_cached": cache.height,
                "messages": plan.messages.height,
                "decisions": plan.decisions.height,
                "accounting_ok": plan.accounting.ok,
                "outbox": outbox,
                "polars": pl.__version__,
            }
        )
    )


def bound(folder: Path, as_of: datetime) -> dict[str, float | int]:
    """Bare polars: read, the same joins and filters, phones pre-normalised; no quarantine,
    no zones, no rendering, no warehouse. A lower bound on what the build can cost."""
    import polars as pl

    t = time.perf_counter()
    read = {
        n: pl.read_csv(
            folder / f"{n}.csv", infer_schema=False, encoding="utf8-lossy", quote_char='"'
        )
        for n in INPUTS
    }
    customers = (
        read["customers"]
        .select(
            pl.col("customer_id").str.strip_chars(),
            pl.col("phone").str.strip_chars().alias("phone_e164"),
            pl.col("email").str.strip_chars().str.to_lowercase(),
        )
        .unique("customer_id", keep="last")
    )
    invoices = (
        read["invoices"]
        .select(
            pl.col("invoice_id").str.strip_chars(),
            pl.col("customer_id").str.strip_chars(),
            pl.col("amount_due").str.strip_chars().cast(pl.Float64, strict=False).alias("amount"),
            pl.col("due_date").str.strip_chars().str.to_date("%Y-%m-%d", strict=False),
            pl.col("status").str.strip_chars().str.to_lowercase(),
            pl.col("updated_at"),
        )
        .sort("updated_at")
        .unique("invoice_id", keep="last")
        .filter(pl.col("status").is_in(["open", "partially_paid"]) & (pl.col("amount") > 0))
        .with_columns((pl.lit(as_of.date()) - pl.col("due_date")).dt.total_days().alias("days"))
        .filter(pl.col("days").is_in([-7, -1, 3, 7]))
    )
    consent = (
        read["consent_events"]
        .select(
            pl.col("customer_id").str.strip_chars(),
            pl.col("channel").str.strip_chars().str.to_lowercase(),
            pl.col("status").str.strip_chars().str.to_lowercase(),
            pl.col("occurred_at"),
        )
        .sort("occurred_at")
        .group_by("customer_id", "channel")
        .agg(pl.col("status").last())
        .filter(pl.col("status").str.contains("out"))
    )
    history = (
        read["contact_history"]
        .select(pl.col("customer_id").str.strip_chars(), pl.col("channel").str.to_lowercase())
        .unique()
    )
    decisions = (
        invoices.join(customers, on="customer_id", how="inner")
        .join(pl.DataFrame({"channel": ["sms", "email"]}), how="cross")
        .join(consent, on=["customer_id", "channel"], how="anti")
        .join(history, on=["customer_id", "channel"], how="anti")
        .filter(
            pl.when(pl.col("channel") == "sms")
            .then(pl.col("phone_e164").is_not_null())
            .otherwise(pl.col("email").is_not_null())
        )
    )
    messages = decisions.group_by("customer_id", "channel").agg(
        pl.col("amount").sum(), pl.col("invoice_id").str.join(",")
    )
    return {"total": round(time.perf_counter() - t, 2), "messages": messages.height}


def _run_child(
    folder: Path, url: str, schema: str, as_of: datetime, run_id: str, profile: Path | None = None
) -> dict:
    env = os.environ | ({"SCALE_1M_PROFILE": str(profile)} if profile else {})
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            str(folder),
            url,
            schema,
            as_of.isoformat(),
            run_id,
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _run_peer(root: Path, as_of: datetime) -> dict:
    """The pandas peer in its own process (own peak RSS), then the planned sets compared."""
    import polars as pl

    out = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("pandas_peer.py")),
            str(root / "day1"),
            as_of.isoformat(),
            str(root / "phones.parquet"),
            str(root / "planned_peer.parquet"),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = json.loads(out.strip().splitlines()[-1])
    keys = ["customer_id", "invoice_id", "channel", "send_at_utc"]
    ours = pl.read_parquet(root / "planned_pipeline.parquet").select(keys)
    peer = pl.read_parquet(root / "planned_peer.parquet").select(keys)
    peer = peer.with_columns(pl.col("send_at_utc").cast(pl.Datetime("us")))
    only_ours = ours.join(peer, on=keys, how="anti", nulls_equal=True)
    only_peer = peer.join(ours, on=keys, how="anti", nulls_equal=True)
    found |= {
        "pipeline_planned": ours.height,
        "only_pipeline": only_ours.height,
        "only_peer": only_peer.height,
        "examples": [
            *only_ours.head(3).rows(),
            *only_peer.head(3).rows(),
        ],
    }
    return found


def _next_day_data(data, share: float, seed: int):  # type: ignore[no-untyped-def]
    """A copy with ``share`` of the customers' phone numbers changed (last digit bumped)."""
    import polars as pl

    customers = data.customers.with_row_index("_i")
    changed = (pl.col("_i").hash(seed) % 10_000) < int(share * 10_000)
    phone = pl.col("phone")
    last = phone.str.slice(-1)
    digit = ((last.cast(pl.Int32, strict=False) + 1) % 10).cast(pl.String).fill_null("1")
    bumped = pl.concat_str([phone.str.slice(0, phone.str.len_chars() - 1), digit])
    customers = customers.with_columns(
        pl.when(changed & phone.is_not_null() & (phone.str.len_chars() > 0))
        .then(bumped)
        .otherwise(phone)
        .alias("phone")
    ).drop("_i")
    return dataclasses.replace(data, customers=customers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--warehouse", choices=["duckdb", "postgres"], default="duckdb")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-peer", action="store_true", help="skip the bound and the peer")
    parser.add_argument("--folder", type=Path, help="keep (and reuse) the generated inputs here")
    parser.add_argument("--no-next", action="store_true", help="skip the next-day run")
    parser.add_argument("--profile", choices=["cold", "warm", "next"], help="cProfile this run")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        folder, url, schema, as_of, run_id = args.child
        child(Path(folder), url, schema or None, datetime.fromisoformat(as_of), run_id)
        return

    if args.profile and not args.folder:
        parser.error("--profile needs --folder")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.folder or Path(tmp)
        if args.folder:
            args.folder.mkdir(parents=True, exist_ok=True)
            (root / "warehouse.duckdb").unlink(missing_ok=True)
            (root / "warehouse.duckdb.wal").unlink(missing_ok=True)
        if not (args.folder and (root / "day2" / "customers.csv").exists()):
            from tasks.sample_data import generate

            t = time.perf_counter()
            data = generate(args.customers, seed=args.seed, as_of=AS_OF.date())
            data.write(root / "day1", "csv")
            _next_day_data(data, 0.01, args.seed).write(root / "day2", "csv")
            del data
            print(f"generated {args.customers:,} customers in {time.perf_counter() - t:.1f} s")
        schema = ""
        if args.warehouse == "duckdb":
            url = f"duckdb:///{root / 'warehouse.duckdb'}"
        else:
            url, schema = args.pg_url, f"bench_{int(time.time())}"
        runs = {}

        def prof(run: str) -> Path | None:
            return root / f"{run}.prof" if args.profile == run else None

        try:
            runs["cold"] = _run_child(root / "day1", url, schema, AS_OF, "cold", prof("cold"))
            runs["warm (same day)"] = _run_child(
                root / "day1", url, schema, AS_OF, "warm", prof("warm")
            )
            if not args.no_next:
                runs["next day (1 %)"] = _run_child(
                    root / "day2", url, schema, AS_OF + timedelta(days=1), "next", prof("next")
                )
        finally:
            if args.warehouse == "postgres":
                import sqlalchemy as sa

                engine = sa.create_engine(url)
                with engine.begin() as conn:
                    conn.exec_driver_sql(f"drop schema if exists {schema} cascade")
        if not args.no_peer:
            found = bound(root / "day1", AS_OF)
            peer = _run_peer(root, AS_OF)

    stages = list(next(iter(runs.values()))["stages_s"])
    width = max(len(k) for k in runs) + 2
    print(
        f"\nbuild-reminders at {args.customers:,} customers, warehouse {args.warehouse}, "
        f"{date.today()}:"
    )
    print(f"{'stage':<12}" + "".join(f"{k:>{width}}" for k in runs))
    for stage in stages:
        print(
            f"{stage:<12}" + "".join(f"{r['stages_s'][stage]:>{width}.2f}" for r in runs.values())
        )
    print(f"{'peak RSS MiB':<12}" + "".join(f"{r['peak_rss_mib']:>{width}}" for r in runs.values()))
    for key in ("phones_parsed", "phones_cached", "messages", "decisions", "accounting_ok"):
        print(f"{key:<12.12}" + "".join(f"{r[key]!s:>{width}}" for r in runs.values()))
    print("outbox:", {k: r["outbox"] for k, r in runs.items()})
    if args.no_peer:
        return
    cold = runs["cold"]["stages_s"]["total"]
    print(
        f"bare-polars bound: {found['total']:.2f} s ({found['messages']:,} messages, rules "
        f"simplified); cold / bound = {cold / found['total']:.1f}x"
    )
    print(
        f"pandas peer (pandas {peer['pandas']}, phones pre-parsed): {peer['total']:.2f} s, "
        f"peak RSS {peer['peak_rss_mib']} MiB; cold / peer = {cold / peer['total']:.2f}x, "
        f"warm / peer = {runs['warm (same day)']['stages_s']['total'] / peer['total']:.2f}x, "
        f"peer / cold = {peer['total'] / cold:.1f}x"
    )
    same = peer["only_pipeline"] == 0 and peer["only_peer"] == 0
    print(
        f"planned set: pipeline {peer['pipeline_planned']:,} rows, peer {peer['planned']:,}; "
        f"only in pipeline {peer['only_pipeline']:,}, only in peer {peer['only_peer']:,}"
        + ("" if same else f"; examples {peer['examples']}")
    )
    if not same:
        raise SystemExit("the pandas peer's planned set differs from the pipeline's")


if __name__ == "__main__":
    main()
