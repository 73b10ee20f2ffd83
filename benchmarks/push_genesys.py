"""Benchmark the push: N contacts into the Genesys sandbox under injected 429s and 5xx.

    ./dev bench benchmarks/push_genesys.py --contacts 100000 --ceiling 3000

Starts the sandbox as its own process with its per-token limit raised far above the client's
ceiling (so only the injected faults push back), fills a DuckDB outbox with N ready messages
over 24 zone waves, runs the push (``tasks.push``) with the client's rate limit at
``--ceiling`` requests per minute, then lets the sandbox run the campaigns and reads its
ledger. Prints achieved requests per second and the share of the ceiling sustained (the
requests beyond the client limiter's initial burst),
retries, lost and duplicate contacts, the CPU seconds the push process and the sandbox process
spent during the push, and, measured in the same run before the push, the add rate a bare
client reaches against this sandbox on this machine (no warehouse: the most any push can reach
here), so a short share can be told apart from a sandbox or machine limit.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.demo import running_sandbox  # noqa: E402
from tasks.genesys import GenesysClient, client_from_settings  # noqa: E402
from tasks.outbox import MESSAGE_COLUMNS  # noqa: E402
from tasks.push import SMS_COLUMNS, contact_frame, push_waves_to_genesys  # noqa: E402
from tasks.settings import CadenceSettings, GenesysSettings, WindowSettings  # noqa: E402
from tasks.warehouse import make_engine, migrate, read_frame, write_frame  # noqa: E402

NOW = datetime(2026, 11, 23, 18, 0)  # every zone below has its window open
ZONES = ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"]


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's child processes (the sandbox), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for children in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        for pid in Path(children).read_text().split():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def bare_add_rate(url: str, args: argparse.Namespace) -> float:
    """Adds per second a bare client (no warehouse, no push machinery) reaches against the
    sandbox: ``--calibrate`` adds of ``--batch`` contacts, ``--concurrency`` in flight, into a
    list no campaign uses (its contacts are never sent)."""
    frame = outbox(args.calibrate * args.batch, prefix="calibrate")
    client = GenesysClient(
        api_base=url,
        login_base=url,
        client_id="sandbox-client",
        client_secret="sandbox-secret",
        requests_per_minute=args.ceiling * 100,
    )
    created = client.create_contact_list(
        "bench-calibrate", SMS_COLUMNS, phone_columns=[("Phone", "TimeZone")]
    )
    parts = [
        contact_frame(frame.slice(i * args.batch, args.batch), "sms") for i in range(args.calibrate)
    ]
    start = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        # as the push sends them: frames encoded column-wise, the answer not decoded
        list(
            pool.map(lambda part: client.add_contacts(created["id"], part, read_back=False), parts)
        )
    elapsed = time.perf_counter() - start
    client.delete_contact_list(created["id"])
    client.close()
    return args.calibrate / elapsed


def outbox(n: int, prefix: str = "bench") -> pl.DataFrame:
    keys = [hashlib.sha256(f"{prefix}-{i}".encode()).hexdigest()[:32] for i in range(n)]
    slot = [i % 6 for i in range(n)]
    zone = [ZONES[i % len(ZONES)] for i in range(n)]
    frame = pl.DataFrame({"message_key": keys, "slot": slot, "time_zone": zone})
    return frame.with_columns(
        pl.lit("C").alias("customer_id"),
        pl.lit("sms").alias("channel"),
        pl.lit(date(2026, 11, 23)).alias("local_send_date"),
        pl.col("time_zone").alias("candidate_zones"),
        pl.lit(NOW).alias("send_at_local"),
        (pl.col("time_zone") + pl.lit(" 2026-11-23 18:00 UTC")).alias("send_at_local_by_zone"),
        pl.lit(NOW).alias("send_at_utc"),
        pl.lit(NOW - timedelta(hours=1)).alias("window_start_utc"),
        pl.lit(NOW + timedelta(hours=12)).alias("window_end_utc"),
        (
            pl.lit("sms:")
            + pl.col("time_zone")
            + pl.lit(":2026-11-23:")
            + pl.col("slot").cast(pl.String)
        ).alias("wave_id"),
        pl.lit(NOW - timedelta(minutes=30)).alias("wave_start_utc"),
        (pl.lit("+1317") + pl.int_range(0, pl.len()).cast(pl.String).str.zfill(7)).alias(
            "to_address"
        ),
        pl.lit("sms_upcoming").alias("template"),
        pl.lit(None, pl.String).alias("subject"),
        pl.lit(
            "Example Utilities: Hi Ana, $120.00 is due on 11/24/2026. Reply STOP to opt out."
        ).alias("body"),
        pl.lit("GSM-7").alias("encoding"),
        pl.lit(1).alias("segments"),
        pl.lit(84).alias("units"),
        pl.lit("INV-1").alias("invoice_ids"),
        pl.lit(1).alias("invoice_count"),
        pl.lit(-1).alias("cadence_step"),
        pl.lit(12000).alias("amount_total_minor"),
        pl.lit("USD").alias("currency"),
        pl.lit("tok").alias("link_token"),
        pl.lit(None, pl.String).alias("template_values"),
        pl.lit("ready").alias("state"),
        pl.lit(None, pl.String).alias("state_reason"),
        pl.lit("bench").alias("first_run_id"),
        pl.lit("bench").alias("last_run_id"),
        pl.lit(NOW).alias("created_at_utc"),
        pl.lit(NOW).alias("updated_at_utc"),
    ).select(MESSAGE_COLUMNS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--ceiling", type=int, default=600, help="client requests per minute")
    parser.add_argument("--batch", type=int, default=1000, help="contacts per add request")
    parser.add_argument("--concurrency", type=int, default=8, help="calls in flight per wave")
    parser.add_argument("--waves-in-flight", type=int, default=4, help="waves pushed at once")
    parser.add_argument("--rate-429", type=float, default=0.05)
    parser.add_argument("--rate-5xx", type=float, default=0.01)
    parser.add_argument(
        "--calibrate",
        type=int,
        default=40,
        help="bare-client adds timed before the push (0: skip)",
    )
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory() as tmp,
        running_sandbox(
            "--rate-limit",
            str(args.ceiling * 100),
            "--rate-429",
            str(args.rate_429),
            "--rate-5xx",
            str(args.rate_5xx),
            "--seed",
            "1",
            "--log-level",
            "error",
        ) as url,
    ):
        # the sandbox clock at the push time: a campaign reaching a contact outside its window
        # skips it for the pass (outside_window=skip), as a real org does
        httpx.post(
            f"{url}/sandbox/run", json={"until": f"{NOW:%Y-%m-%dT%H:%M:%S}Z"}, timeout=60
        ).raise_for_status()
        bare = bare_add_rate(url, args) if args.calibrate else None
        engine = make_engine(f"duckdb:///{Path(tmp) / 'bench.duckdb'}")
        migrate(engine)
        with engine.begin() as conn:
            write_frame(conn, "messages", outbox(args.contacts))
        genesys = GenesysSettings(
            base_url=url,
            client_id="sandbox-client",
            requests_per_minute=args.ceiling,
            push_batch_size=args.batch,
            push_concurrency=args.concurrency,
            push_waves_in_flight=args.waves_in_flight,
            messages_per_minute=10000,
            max_attempts=10,
            # Genesys holds 1,000,000 contacts per list: a bench of up to a million contacts
            # fills one list (beyond the default rollover point, 900,000)
            list_rollover_at=min(1_000_000, max(900_000, args.contacts)),
        )
        stamps: list[float] = []
        client = client_from_settings(
            genesys,
            "sandbox-secret",
            on_request=lambda kind, _path: (
                stamps.append(time.perf_counter()) if kind == "request" else None
            ),
            connections=args.concurrency * args.waves_in_flight,
        )
        start, cpu_start, sandbox_start = (
            time.perf_counter(),
            time.process_time(),
            children_cpu_seconds(),
        )
        push_waves_to_genesys(
            engine,
            client,
            genesys=genesys,
            window=WindowSettings(),
            cadence=CadenceSettings(),
            now=NOW,
            horizon=timedelta(hours=1),
            run_id="bench",
        )
        elapsed = time.perf_counter() - start
        client_cpu = time.process_time() - cpu_start
        sandbox_cpu = children_cpu_seconds() - sandbox_start
        stats = dict(client.stats)
        burst = int(client._bucket.capacity)  # the limiter's initial burst
        client.close()
        with engine.connect() as conn:
            states = dict(
                read_frame(conn, "select state, count(*) from messages group by state").rows()
            )
        engine.dispose()
        with httpx.Client(base_url=url, timeout=600) as admin:
            sandbox_stats = admin.get("/sandbox/stats").json()
            admin.post("/sandbox/run", json={"until": "2026-11-23T23:00:00Z"}).raise_for_status()
            ledger = admin.get("/sandbox/ledger").json()["counts"]

    ceiling_rps = args.ceiling / 60
    lost = args.contacts - ledger["distinct_contacts"] - states.get("ready", 0)
    span = stamps[-1] - stamps[0]
    achieved = (len(stamps) - 1) / span
    # The client's token bucket starts full (a tenth of a minute's worth): a run of ~20 s
    # may exceed the ceiling by that burst. The share counts only the requests beyond it,
    # which is what the client sustained under the limit.
    steady = max(0, len(stamps) - 1 - burst) / span
    ratio = steady / ceiling_rps
    lines = [
        f"push of {args.contacts:,} contacts, batches of {args.batch},"
        f" {args.concurrency} in flight per wave, {args.waves_in_flight} waves at once",
        f"  faults injected: {args.rate_429:.0%} 429 (Retry-After 1 s), {args.rate_5xx:.0%} 503",
        f"  elapsed              {elapsed:8.1f} s (requests from first to last: {span:.1f} s)",
        f"  requests sent        {stats['requests']:8d}"
        f"  (retries {stats['retries']}, 429s {stats['rate_limited']})",
        f"  achieved             {achieved:8.2f} req/s over the run, {steady:.2f} req/s beyond"
        f" the limiter's initial burst of {burst}, against a ceiling of {ceiling_rps:.2f} req/s",
        f"  share of the ceiling {ratio:8.1%} (sustained, the burst excluded)",
        f"  cpu during the push  {client_cpu:8.1f} s push process (all threads),"
        f" {sandbox_cpu:.1f} s sandbox; load average {os.getloadavg()[0]:.1f}"
        f" on {os.cpu_count()} cores",
    ]
    if bare is not None:
        lines += [
            f"  bare client          {bare:8.2f} adds/s of {args.batch} contacts against this"
            f" sandbox ({bare / ceiling_rps:.1%} of the ceiling); the push reached"
            f" {achieved / bare:.0%} of it",
        ]
    lines += [
        f"  sandbox saw          {sandbox_stats['requests']} requests,"
        f" by status {sandbox_stats['by_status']}",
        f"  outbox states        {states}",
        f"  contacts sent        {ledger['distinct_contacts']:,} distinct"
        f" of {ledger['total']:,} sends",
        f"  left ready           {states.get('ready', 0):,} (waiting for room in a list)",
        f"  lost                 {lost}",
        f"  duplicates           {ledger['duplicates']}",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
