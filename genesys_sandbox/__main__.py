"""``python -m genesys_sandbox`` / ``genesys-sandbox``: serve the sandbox with uvicorn.

Contract: one process, one worker, in-memory state; faults from the flags can be changed
later through ``PUT /sandbox/faults``.
"""

from __future__ import annotations

import argparse
import gc
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import uvicorn

from genesys_sandbox.app import create_app
from genesys_sandbox.clock import parse_instant
from genesys_sandbox.config import SWITCHES, Faults, SandboxConfig

__all__ = ["main", "parse_args", "parse_switches", "tune_gc"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="genesys-sandbox", description="Serve the Genesys Cloud sandbox."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--rate-limit", type=int, default=300, help="requests/min per token")
    parser.add_argument("--rate-429", type=float, default=0.0, help="share of injected 429s")
    parser.add_argument("--rate-5xx", type=float, default=0.0, help="share of injected 503s")
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--drop-after-commit", type=float, default=0.0)
    parser.add_argument("--expire-tokens-after", type=int, default=None, metavar="N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--record-requests",
        action="store_true",
        help="record every /api/v2 and /oauth request (GET /sandbox/requests)",
    )
    parser.add_argument(
        "--clock-start",
        default=None,
        help="the virtual clock's start, ISO-8601 UTC or 'now' (default 2026-11-23T06:00)",
    )
    parser.add_argument("--log-level", default="info")
    parser.add_argument(
        "--switch",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a behaviour switch, repeatable (numbers and null as JSON): "
        + ", ".join(f"{k} ({'|'.join(v) if v else 'number'})" for k, v in SWITCHES.items()),
    )
    return parser.parse_args(argv)


def parse_switches(items: Sequence[str]) -> dict[str, Any]:
    """``["recycle=never", "campaign_sms_max_length=null"]`` -> switch values."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or name not in SWITCHES:
            raise SystemExit(
                f"--switch {item!r}: expected NAME=VALUE with NAME one of {sorted(SWITCHES)}"
            )
        if SWITCHES[name] is None:
            try:
                out[name] = json.loads(raw)
            except ValueError as exc:
                raise SystemExit(f"--switch {item!r}: {exc}") from exc
        else:
            out[name] = raw
    return out


def tune_gc() -> None:
    """Collect cycles less often than CPython's default (every 700 allocations).

    The org lives in memory as millions of small containers (a contact is about a dozen dicts)
    and a 1,000-contact add allocates some 20,000 more for its answer, so with the default
    thresholds the collector scans the growing org over and over: about half the CPU of an add
    (in process, 100 adds of 1,000: 38 us per contact with the default, 20 with these
    thresholds or with the collector off). The org's objects form no cycles, reference
    counting frees them; the collector still runs, for the rare cycle elsewhere."""
    gc.set_threshold(10_000, 20, 100)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    faults = Faults(
        rate_429=args.rate_429,
        rate_5xx=args.rate_5xx,
        latency_ms=args.latency_ms,
        drop_after_commit_rate=args.drop_after_commit,
        expire_tokens_after_requests=args.expire_tokens_after,
        seed=args.seed,
    )
    extra: dict[str, Any] = {}
    if args.clock_start:
        extra["clock_start"] = (
            datetime.now(UTC).replace(tzinfo=None)
            if args.clock_start == "now"
            else parse_instant(args.clock_start)
        )
    config = SandboxConfig(
        **extra,
        rate_limit_per_minute=args.rate_limit,
        faults=faults,
        record_requests=args.record_requests,
    )
    try:
        config.set_switches(parse_switches(args.switch))
    except ValueError as exc:
        raise SystemExit(f"--switch: {exc}") from exc
    tune_gc()
    uvicorn.run(
        create_app(config), host=args.host, port=args.port, workers=1, log_level=args.log_level
    )


if __name__ == "__main__":
    main()
