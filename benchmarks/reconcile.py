"""Benchmark the reconciliation: N attempts x N carrier records in DuckDB, full and one day.

    ./dev bench benchmarks/reconcile.py --attempts 10000000 [--days 100] [--day-size 100000]
        [--memory-limit 12GB]

Generates (vectorised polars expressions, not timed against the goals) N Genesys attempts spread
over ``--days`` UTC days and about N carrier records (1 % of attempts never billed, 1 % extra
records nobody attempted, 0.5 % wrong prices, 0.5 % wrong segment counts, 2 % failed at the
carrier) as parquet files, plus one further day of ``--day-size`` attempts and records. As in
production, only agentless sends (``AGENTLESS_PERCENT`` = 10 % of attempts, source ``agentless``)
carry the carrier's message id and match by it; the campaign SMS of the contact-list export
(90 %) carry none and match by the fallback (recipient + time window + body hash). A child
process (so its peak RSS is its own) then, on a DuckDB file migrated like the warehouse:

1. **full, from the files**: ``reconcile_message`` over ``read_parquet`` views of the two
   files (the same model SQL), run twice with two sinks: written to a parquet file with
   ``copy ... to`` (files on disk in, a file on disk out: the goal's measure, <= 30 s), and
   materialized as a table of the DuckDB file with ``create table ... as`` (timed, reported
   beside it: DuckDB's native storage analyses and compresses every column of every row group,
   about half the CPU of that run at 10M rows, where the parquet writer's dictionary + snappy
   costs a fifth of it). The two results are checked equal, row for row (untimed);
2. loads the files into the ``attempts`` / ``carrier_records`` tables (timed, not a goal) on
   one thread, so the tables have full row groups as day-by-day loads leave them (a parallel
   bulk insert leaves part-filled row groups, and DuckDB's next checkpoint of a changed table
   merges them, rewriting the table: at 2M rows the day's checkpoint took 23-33 s after a
   parallel load and 4 s after a one-thread one; the 75 s seen at 10M was that merge);
3. **one incremental day**: merges the new day's files by natural key (stage, delete, insert),
   materializes that day with :func:`tasks.reconcile.reconcile_days` and checkpoints (a day
   is not done until it is durable); goal <= 5 s for the three together (``day_total_s``).

Prints wall times, the child's CPU seconds per phase (``*_cpu_s``: steadier than wall time on a
shared machine), status counts and peak RSS as JSON. Figures vary with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

BASE = datetime(2026, 8, 1)
US = 7_900
AGENTLESS_PERCENT = 10
CHECKPOINT_THRESHOLD = "1GB"


def generate(folder: Path, n: int, days: int, seed: int, *, first_day: int = 0) -> dict:
    """Write attempts.parquet and carrier_records.parquet for ``n`` attempts over ``days``
    days starting ``first_day`` days after BASE (polars expressions only; pseudo-random draws
    are seeded hashes of the row number); returns counts."""
    import polars as pl

    def draw(k: int, modulo: int) -> pl.Expr:
        return (pl.col("i").hash(seed * 1_000 + k) % modulo).cast(pl.Int64)

    base = pl.lit(BASE).cast(pl.Datetime("us"))
    agentless = pl.when(pl.col("agentless"))
    loaded = BASE + timedelta(days=first_day + days + 5)
    frame = (
        pl.LazyFrame({"i": pl.int_range(n, eager=True, dtype=pl.Int64)})
        .with_columns((pl.col("i") + first_day * 1_000_000_000).alias("id"))
        .with_columns(
            (first_day + pl.col("i") % days).alias("day"),
            pl.col("id").cast(pl.String).alias("k"),
            pl.when(draw(1, 100) < 10).then(2).otherwise(1).cast(pl.Int32).alias("segments"),
            (draw(8, 100) < AGENTLESS_PERCENT).alias("agentless"),
        )
        .with_columns(
            (base + pl.duration(days=pl.col("day"), seconds=draw(2, 86_400))).alias("at"),
            ("+1" + (2_120_000_000 + pl.col("id") % 900_000_000).cast(pl.String)).alias("to"),
            ("b" + (pl.col("id") % 1000).cast(pl.String)).alias("body"),
        )
        .collect()
    )
    attempts = frame.select(
        ("m" + pl.col("k")).alias("message_key"),
        ("C" + pl.col("k")).alias("customer_id"),
        pl.lit('["I"]').alias("invoice_ids"),
        pl.lit("sms").alias("channel"),
        agentless.then(pl.lit("agentless"))
        .otherwise(pl.lit("contact_list_export"))
        .alias("source"),
        agentless.then(None).otherwise(pl.lit("L1")).alias("genesys_contact_list_id"),
        agentless.then(None)
        .otherwise("CAMP" + (pl.col("id") % 20).cast(pl.String))
        .alias("genesys_campaign_id"),
        agentless.then("conv" + pl.col("k")).alias("genesys_conversation_id"),
        agentless.then("gm" + pl.col("k")).alias("genesys_message_id"),
        pl.col("at").alias("attempted_at_utc"),
        agentless.then(pl.lit("sent"))
        .otherwise(pl.lit("OUTBOUND-MESSAGE-SENT"))
        .alias("wrapup_code"),
        pl.lit("sent").alias("outcome_class"),
        pl.col("to").alias("to_address"),
        pl.col("body").alias("body_sha256"),
        pl.col("segments"),
        agentless.then("SM" + pl.col("k")).alias("carrier_message_id"),
        pl.col("at").dt.date().alias("attempt_day"),
        pl.lit("bench").alias("load_id"),
        pl.lit(loaded).cast(pl.Datetime("us")).alias("loaded_at_utc"),
    )
    status = (
        pl.when(draw(3, 100) < 95)
        .then(pl.lit("delivered"))
        .when(draw(3, 100) < 98)
        .then(pl.lit("undelivered"))
        .otherwise(pl.lit("failed"))
    )
    carrier_segments = (
        pl.when(draw(4, 1000) < 5).then(pl.col("segments") + 1).otherwise(pl.col("segments"))
    )
    records = (
        frame.filter(draw(5, 100) >= 1)  # 1 % never billed
        .with_columns(status.alias("status"), carrier_segments.alias("carrier_segments"))
        .with_columns(
            (
                pl.when(pl.col("status") == "failed")
                .then(0)
                .otherwise(pl.col("carrier_segments") * US)
                + pl.when(draw(6, 1000) < 5).then(1_000).otherwise(0)
            ).alias("price")
        )
        .select(
            pl.lit("twilio").alias("carrier"),
            ("SM" + pl.col("k")).alias("carrier_message_id"),
            pl.lit(1, pl.Int32).alias("part_index"),
            pl.lit(1, pl.Int32).alias("parts_total"),
            pl.lit("AC1").alias("account_ref"),
            pl.lit("+13175550100").alias("from_address"),
            pl.col("to").alias("to_address"),
            pl.lit("outbound-api").alias("direction"),
            pl.col("status"),
            pl.col("status").alias("status_class"),
            pl.lit(None, pl.String).alias("error_code"),
            pl.col("carrier_segments").cast(pl.Int32).alias("num_segments"),
            pl.col("price").cast(pl.Int64).alias("price_micros"),
            pl.lit("USD").alias("price_currency"),
            pl.lit(True).alias("price_final"),
            (pl.col("at") + pl.duration(seconds=draw(7, 120))).alias("sent_at_utc"),
            (pl.col("at") + pl.duration(seconds=draw(7, 120))).alias("updated_at_utc"),
            pl.lit(None, pl.String).alias("sender_reference"),
            pl.col("body").alias("body_sha256"),
            pl.lit("bench.jsonl").alias("source_file"),
            pl.col("i").cast(pl.Int32).alias("source_row"),
            pl.lit(loaded).cast(pl.Datetime("us")).alias("loaded_at_utc"),
            pl.lit("bench").alias("load_id"),
        )
    )
    extra = records.head(n // 100).with_columns(  # 1 % billed, never attempted
        ("SX" + pl.col("carrier_message_id")).alias("carrier_message_id"),
        ("+1313" + pl.col("to_address").str.slice(5)).alias("to_address"),
    )
    # loads arrive day by day, so the tables are clustered by time (as a warehouse is)
    attempts = attempts.sort("attempted_at_utc")
    records = pl.concat([records, extra]).sort("sent_at_utc")
    folder.mkdir(parents=True, exist_ok=True)
    attempts.write_parquet(folder / "attempts.parquet")
    records.write_parquet(folder / "carrier_records.parquet")
    # the known answer, from the draws alone (not from the model): an unbilled attempt, an
    # extra record, then (on billed attempts) a changed segment count before a changed price
    billed, segments, price = draw(5, 100) >= 1, draw(4, 1000) < 5, draw(6, 1000) < 5
    known = frame.select(
        (~billed).sum().alias("attempted_not_billed"),
        (billed & segments).sum().alias("segment_mismatch"),
        (billed & ~segments & price).sum().alias("price_mismatch"),
        (billed & ~segments & ~price).sum().alias("matched"),
    ).row(0, named=True)
    known["billed_not_attempted"] = extra.height
    return {
        "attempts": attempts.height,
        "carrier_records": records.height,
        "injected": {k: int(v) for k, v in sorted(known.items()) if v},
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(folder: Path, new_day: date, memory_limit: str = "12GB") -> None:
    import duckdb

    from tasks.reconcile import reconcile_days
    from tasks.warehouse import _sql_files, make_engine, migrate, model_order

    out: dict[str, object] = {"duckdb": duckdb.__version__}
    full_dir, day_dir = folder / "full", folder / "day"
    # 1. full reconciliation straight from the parquet files (same model SQL)
    con = duckdb.connect(str(folder / "files.duckdb"))
    con.execute("set preserve_insertion_order = false")
    con.execute(f"set memory_limit = '{memory_limit}'")
    con.execute(
        f"create view attempts as select * from read_parquet('{full_dir / 'attempts.parquet'}')"
    )
    con.execute(
        "create view carrier_records as select * from"
        f" read_parquet('{full_dir / 'carrier_records.parquet'}')"
    )
    con.execute(
        "create table carrier_rates as select 'twilio' as carrier, '+1' as destination_prefix,"
        f" cast({US} as bigint) as price_micros_per_segment, 'USD' as currency,"
        " date '2026-01-01' as valid_from, cast(null as date) as valid_to"
    )
    models = dict(_sql_files("models", "duckdb"))
    for _name, text in model_order(
        [(n, models[n]) for n in ("reconcile_clock", "reconcile_message")]
    ):
        con.execute(text)
    result_file = folder / "reconcile_message.parquet"
    t, c = time.perf_counter(), _cpu()
    con.execute(f"copy (select * from reconcile_message) to '{result_file}' (format parquet)")
    out["full_from_files_s"] = round(time.perf_counter() - t, 2)
    out["full_from_files_cpu_s"] = round(_cpu() - c, 2)
    t, c = time.perf_counter(), _cpu()
    con.execute("create table result as select * from reconcile_message")
    con.execute("checkpoint")
    out["full_to_table_s"] = round(time.perf_counter() - t, 2)
    out["full_to_table_cpu_s"] = round(_cpu() - c, 2)
    out["full_statuses"] = dict(
        con.execute(
            f"select status, count(*) from read_parquet('{result_file}') group by 1 order by 1"
        ).fetchall()
    )
    out["full_rows"] = con.execute("select count(*) from result").fetchone()[0]
    # the two sinks hold the same rows (a multiset difference both ways is empty)
    out["sinks_differ_rows"] = con.execute(
        "select count(*) from ((select * from result except all select * from"
        f" read_parquet('{result_file}')) union all (select * from read_parquet('{result_file}')"
        " except all select * from result))"
    ).fetchone()[0]
    con.close()
    result_file.unlink()

    # 2. the warehouse tables (the product's schema), loaded from the files
    engine = make_engine(f"duckdb:///{folder / 'warehouse.duckdb'}")
    migrate(engine)
    raw = engine.raw_connection()
    raw.execute(f"set memory_limit = '{memory_limit}'")
    raw.execute("set threads = 1")
    t = time.perf_counter()
    raw.execute(
        f"insert into attempts select * from read_parquet('{full_dir / 'attempts.parquet'}')"
    )
    raw.execute(
        "insert into carrier_records select * from"
        f" read_parquet('{full_dir / 'carrier_records.parquet'}')"
    )
    raw.execute(
        "insert into carrier_rates values ('twilio', '+1', 7900, 'USD', date '2026-01-01', null)"
    )
    raw.commit()
    out["load_tables_s"] = round(time.perf_counter() - t, 2)
    # the load's own checkpoint, so the day below starts from a checkpointed file and
    # day_checkpoint_s is the day's alone
    t = time.perf_counter()
    raw.execute("checkpoint")
    out["load_checkpoint_s"] = round(time.perf_counter() - t, 2)
    raw.execute("reset threads")
    raw.close()

    # 3. one incremental day: merge the day's files by natural key, reconcile that day,
    # checkpoint. The automatic checkpoint (when the WAL passes checkpoint_threshold, 16 MB by
    # default) would fire inside a statement; the day defers it to one explicit checkpoint at
    # its end, timed and counted in day_total_s.
    with engine.connect() as conn:
        conn.exec_driver_sql(f"set checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
    t, c = time.perf_counter(), _cpu()
    with engine.begin() as conn:
        driver = conn.connection.dbapi_connection
        driver.execute(
            "create temporary table stage_a as select * from"
            f" read_parquet('{day_dir / 'attempts.parquet'}')"
        )
        # as tasks/attempts.py load_attempts: the key includes attempted_at_utc, so the
        # delete is bounded by the stage's time range (constants: zone maps skip the rest)
        lo, hi = driver.execute(
            "select min(attempted_at_utc), max(attempted_at_utc) from stage_a"
        ).fetchone()
        driver.execute(
            "delete from attempts where attempted_at_utc >= ? and attempted_at_utc <= ?"
            " and exists (select 1 from stage_a s where"
            " s.message_key = attempts.message_key and s.attempted_at_utc ="
            " attempts.attempted_at_utc and s.source = attempts.source)",
            [lo, hi],
        )
        driver.execute("insert into attempts select * from stage_a")
        driver.execute(
            "create temporary table stage_c as select * from"
            f" read_parquet('{day_dir / 'carrier_records.parquet'}')"
        )
        driver.execute(
            "delete from carrier_records where exists (select 1 from stage_c s where"
            " s.carrier = carrier_records.carrier and s.carrier_message_id ="
            " carrier_records.carrier_message_id and s.part_index = carrier_records.part_index)"
        )
        driver.execute("insert into carrier_records select * from stage_c")
    out["day_load_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    with engine.begin() as conn:
        out["day_rows"] = reconcile_days(conn, [new_day])
    out["day_reconcile_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    with engine.connect() as conn:
        conn.exec_driver_sql("checkpoint")
    out["day_checkpoint_s"] = round(time.perf_counter() - t, 2)
    out["day_total_s"] = round(
        out["day_load_s"] + out["day_reconcile_s"] + out["day_checkpoint_s"], 2
    )
    out["day_total_cpu_s"] = round(_cpu() - c, 2)
    with engine.connect() as conn:
        out["day_statuses"] = dict(
            conn.exec_driver_sql(
                "select status, count(*) from reconcile_results group by 1 order by 1"
            ).fetchall()
        )
    engine.dispose()
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--day-size", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--folder", default=None, help="keep the files here (default: temp)")
    parser.add_argument(
        "--memory-limit", default="12GB", help="DuckDB memory_limit (it spills beyond it)"
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), date.fromisoformat(args.child[1]), args.child[2])
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.folder or tmp)
        t = time.perf_counter()
        full = generate(folder / "full", args.attempts, args.days, args.seed)
        day = generate(folder / "day", args.day_size, 1, args.seed + 1, first_day=args.days)
        generated = round(time.perf_counter() - t, 2)
        new_day = (BASE + timedelta(days=args.days)).date()
        for stale in folder.glob("*.duckdb*"):  # a kept --folder: start from empty databases
            stale.unlink()
        t = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                str(folder),
                new_day.isoformat(),
                args.memory_limit,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = round(time.perf_counter() - t, 2)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            raise SystemExit(proc.returncode)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            json.dumps(
                {
                    "generated": {"full": full, "day": day, "seconds": generated},
                    "child_wall_s": wall,
                    **result,
                    "statuses_as_injected": {
                        "full": result["full_statuses"] == full["injected"],
                        "day": result["day_statuses"] == day["injected"],
                    },
                    "goals": {
                        "full_from_files_s (to a parquet file) <= 30": result["full_from_files_s"]
                        <= 30,
                        "day_total_s (load + reconcile + checkpoint) <= 5": result["day_total_s"]
                        <= 5,
                    },
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
