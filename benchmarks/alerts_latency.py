"""Benchmark the alerts service: webhook to agentless request, on loopback.

    ./dev bench benchmarks/alerts_latency.py --rate 200 --seconds 10 [--burst-seconds 2]

Starts the Genesys sandbox as its own process (its per-token limit raised to --sandbox-rpm so
that only the injected burst pushes back; a real org allows 300 requests per minute per
OAuth client, i.e. 5 agentless sends per second), serves the alerts service (uvicorn, its
worker running) on 127.0.0.1 over a fresh DuckDB warehouse, and posts signed
payment_received events open-loop at --rate per second for --seconds (each of the 32 sender
threads makes its HTTP client and connects before the clock starts: building 32 clients is
CPU the service would otherwise compete with in the first second). In the middle, the
sandbox answers every request 503 for --burst-seconds. Every 202 is given only after the
event is committed.

The request's group commit stores the event, decides its alert and commits the send intent
in one transaction, and the dispatcher sends at once.

Prints: the webhook answer latency (POST -> 202), the webhook-to-agentless latency
(POST sent -> the service starting the agentless HTTP request for that alert, timed inside the
service by wrapping the client's send), p50 / p95 / p99 of both, the achieved rate, and after
the burst has cleared, lost events (a 202 with no sandbox ledger entry) and duplicates (an
event with more than one). ``uptime`` is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.alerts_service import (  # noqa: E402
    AlertService,
    create_alerts_app,
    limit_duckdb_threads,
    utc_now,
)
from flows.demo import running_sandbox  # noqa: E402
from tasks.alerts import directory_from_frames, sign  # noqa: E402
from tasks.genesys import GenesysClient, pool_limits  # noqa: E402
from tasks.render import load_templates  # noqa: E402
from tasks.settings import load_settings  # noqa: E402
from tasks.warehouse import make_engine, migrate, read_frame  # noqa: E402

SECRET = "bench-secret"
ZONES = [
    "America/New_York",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
]


def daytime_zone() -> str:
    """A zone where it is between 09:00 and 20:00 now, so no alert is held."""
    for zone in ZONES:
        hour = datetime.now(UTC).astimezone(ZoneInfo(zone)).hour
        if 9 <= hour < 20:
            return zone
    raise SystemExit("no daytime zone found")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


def _people(n: int, zone: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    people = pl.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(n)],
            "full_name": ["Ada Lovelace"] * n,
            "first_name": ["Ada"] * n,
            "phone_e164": [f"+1317555{i:04d}" for i in range(n)],
            "email": [f"c{i}@example.com" for i in range(n)],
            "time_zones": [[zone]] * n,
            "locale": ["en_US"] * n,
            "preferred_channel": ["sms"] * n,
        }
    )
    consent = pl.DataFrame(
        {
            "customer_id": people["customer_id"],
            "channel": ["sms"] * n,
            "status": ["opt_in"] * n,
            "occurred_at": [datetime(2026, 1, 1)] * n,
        }
    )
    return people, consent


def run_service(args: argparse.Namespace) -> None:
    """The child process: the alerts service (uvicorn + worker) on --port; ``GET
    /bench/timings`` answers when each agentless request started (by body)."""
    import uvicorn

    people, consent = _people(args.customers, args.zone)
    engine = make_engine(args.warehouse)
    migrate(engine)
    settings = load_settings(
        alerts={
            "signing_secret": SECRET,
            "poll_interval_seconds": 3600,  # delivery polling is not what this measures
            "retry_after_seconds": 0.2,
            # the sandbox's details data have no lag (switch analytics_lag_seconds = 0): an
            # unknown send (a 5xx other than 503 in the burst) is looked up and settled fast
            "lookup_delay_seconds": 1.0,
        }
    )
    client = GenesysClient(
        api_base=args.sandbox,
        login_base=args.sandbox,
        client_id="sandbox-client",
        client_secret="sandbox-secret",
        requests_per_minute=args.sandbox_rpm,
        max_attempts=2,
        max_backoff_seconds=0.05,
        # the service's pool (service_from_settings): one kept-alive connection per thread
        limits=pool_limits(2 * settings.alerts.send_concurrency),
    )
    started: dict[str, float] = {}
    real_send = client.send_agentless_sms

    def timed_send(from_address: str, to_address: str, text: str) -> dict:
        started.setdefault(text, time.time())
        return real_send(from_address, to_address, text)

    client.send_agentless_sms = timed_send  # type: ignore[method-assign]
    limit_duckdb_threads(engine, settings.alerts.duckdb_threads)  # as `reminders alerts serve`
    service = AlertService(
        engine,
        directory_from_frames(people, consent),
        load_templates(),
        settings,
        client,
        clock=utc_now,
    )
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    app = create_alerts_app(service, own_process=True)  # as `reminders alerts serve`
    app.router.routes.append(  # the bench reads the timings before it stops the service
        Route(
            "/bench/timings",
            lambda _r: JSONResponse({"started": dict(started), "cpu": time.process_time()}),
            methods=["GET"],
        )
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--sandbox", default="", help=argparse.SUPPRESS)
    parser.add_argument("--zone", default="", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=int, default=200, help="events per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--burst-seconds", type=float, default=2.0, help="sandbox 503 burst")
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--sandbox-rpm", type=int, default=1_000_000)
    parser.add_argument("--warehouse", default=None, help="SQLAlchemy URL (default temp DuckDB)")
    args = parser.parse_args()
    if args.role == "service":
        run_service(args)
        return
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    bench_once(args)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


def bench_once(args: argparse.Namespace) -> None:
    zone = daytime_zone()
    n = args.customers
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_sandbox(
            "--rate-limit",
            str(args.sandbox_rpm),
            "--log-level",
            "warning",
            "--clock-start",  # its message times near ours, so a lookup's interval holds them
            "now",
        ) as sandbox_url,
        httpx.Client(base_url=sandbox_url, timeout=60) as admin,
    ):
        warehouse = args.warehouse or f"duckdb:///{Path(tmp) / 'alerts.duckdb'}"
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        child = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--role=service",
                f"--port={port}",
                f"--sandbox={sandbox_url}",
                f"--zone={zone}",
                f"--customers={n}",
                f"--sandbox-rpm={args.sandbox_rpm}",
                f"--warehouse={warehouse}",
            ]
        )
        url = f"http://127.0.0.1:{port}"
        try:
            result = _drive(args, url, admin, zone, n)
            timings = httpx.get(f"{url}/bench/timings", timeout=30).json()
            started, cpu = timings["started"], timings["cpu"]
        finally:
            child.terminate()
            child.wait(timeout=30)
        engine = make_engine(warehouse)
        with engine.begin() as conn:
            bodies = read_frame(conn, "select event_id, body from alerts where channel = 'sms'")
            intents = read_frame(
                conn,
                "select a.event_id, min(l.at_utc) as sending_at from alert_log l"
                " join alerts a using (alert_key) where l.to_state = 'sending'"
                " group by a.event_id",
            )
        engine.dispose()
        ledger = admin.get("/sandbox/ledger").json()["messages"]
    sent_at, answer_ms, statuses, states, offered_seconds, drained_seconds, total, cpu0 = result
    cpu -= cpu0  # the service's CPU while driven (start-up and migrations left out)
    request_at = {
        e: datetime.fromtimestamp(started[b], UTC).replace(tzinfo=None)
        for e, b in bodies.iter_rows()
        if b in started
    }
    to_agentless = [
        (request_at[e] - sent_at[e]).total_seconds() * 1000 for e in sent_at if e in request_at
    ]
    first_intent = dict(intents.iter_rows())
    to_intent = [
        (first_intent[e] - sent_at[e]).total_seconds() * 1000 for e in sent_at if e in first_intent
    ]
    bodies_sent = Counter(m["body"] for m in ledger)  # each event's body is unique (its amount)
    accepted = len(sent_at)
    answers = list(answer_ms.values())
    print(f"zone {zone}; offered {total} events at {args.rate}/s over {offered_seconds:.1f} s")
    print(f"answers {dict(statuses)}; alerts by state {states}")
    print(
        f"webhook -> 202:        p50 {pct(answers, 50):6.1f} ms  p95 {pct(answers, 95):6.1f} ms"
        f"  p99 {pct(answers, 99):6.1f} ms"
    )
    print(
        f"webhook -> intent stamped: p50 {pct(to_intent, 50):6.1f} ms  p95"
        f" {pct(to_intent, 95):6.1f} ms  (the decision's clock reading, just before its commit)"
    )
    print(
        f"webhook -> agentless request ({len(to_agentless)}):  p50 {pct(to_agentless, 50):6.1f} ms"
        " p95"
        f" {pct(to_agentless, 95):6.1f} ms  p99 {pct(to_agentless, 99):6.1f} ms"
    )
    print(
        f"throughput: {accepted / offered_seconds:.0f} events/s accepted; all {len(ledger)}"
        f" sent by {drained_seconds:.1f} s"
    )
    lost = accepted - len(bodies_sent)
    duplicates = sum(k - 1 for k in bodies_sent.values() if k > 1)
    print(
        f"service CPU: {cpu:.1f} s while driven, {1000 * cpu / max(accepted, 1):.2f} ms per event"
    )
    print(f"lost {max(lost, 0)}, duplicates {duplicates} (burst {args.burst_seconds:.1f} s of 503)")


def _drive(args: argparse.Namespace, url: str, admin: httpx.Client, zone: str, n: int) -> tuple:
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/health", timeout=2).raise_for_status()
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise RuntimeError("the alerts service did not start") from None
            time.sleep(0.2)
    sent_at: dict[str, datetime] = {}
    answer_ms: dict[str, float] = {}
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    local = threading.local()

    def post(i: int) -> None:
        http = getattr(local, "http", None)
        if http is None:
            http = local.http = httpx.Client(base_url=url, timeout=30)
        event_id = f"evt-{i}"
        body = json.dumps(
            {
                "event_id": event_id,
                "type": "payment_received",
                "customer_id": f"C{i % n}",
                "invoice_id": f"I{i}",
                "amount": f"{1 + i // 100}.{i % 100:02d}",
                "currency": "USD",
                "occurred_at": "2026-11-23T14:00:00Z",
            }
        ).encode()
        ts = int(time.time())
        headers = {
            "content-type": "application/json",
            "x-reminders-timestamp": str(ts),
            "x-reminders-signature": sign(SECRET, ts, body),
        }
        start = utc_now()
        t0 = time.perf_counter()
        status = http.post("/events", content=body, headers=headers).status_code
        elapsed = (time.perf_counter() - t0) * 1000
        with lock:
            statuses[status] += 1
            if status == 202:
                sent_at[event_id] = start
                answer_ms[event_id] = elapsed

    total = int(args.rate * args.seconds)
    workers = 32
    ready = threading.Barrier(workers)

    def warm(_i: int) -> None:  # each sender thread's client made (and connected) untimed
        http = local.http = httpx.Client(base_url=url, timeout=30)
        http.get("/health").raise_for_status()
        ready.wait(timeout=60)

    burst_at = args.seconds / 2
    burst_started = burst_done = False
    burst_t = 0.0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(warm, range(workers)))
        cpu_before = httpx.get(f"{url}/bench/timings", timeout=30).json()["cpu"]
        began = time.perf_counter()
        for i in range(total):
            delay = began + i / args.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            now = time.perf_counter()
            if not burst_started and now - began >= burst_at and args.burst_seconds > 0:
                admin.put("/sandbox/faults", json={"rate_5xx": 1.0}).raise_for_status()
                burst_started, burst_t = True, now
            if burst_started and not burst_done and now - burst_t >= args.burst_seconds:
                admin.put("/sandbox/faults", json={"rate_5xx": 0.0}).raise_for_status()
                burst_done = True
            pool.submit(post, i)
    offered_seconds = time.perf_counter() - began
    admin.put("/sandbox/faults", json={"rate_5xx": 0.0}).raise_for_status()
    deadline = time.monotonic() + 120
    states: dict[str, int] = {}
    while time.monotonic() < deadline:
        health = httpx.get(f"{url}/health", timeout=10).json()
        states = health["alerts"]
        open_ = sum(states.get(k, 0) for k in ("ready", "sending", "held", "unknown"))
        if not open_ and not health["events"].get("received"):
            break
        time.sleep(0.2)
    drained_seconds = time.perf_counter() - began
    return sent_at, answer_ms, statuses, states, offered_seconds, drained_seconds, total, cpu_before


if __name__ == "__main__":
    main()
