"""Stagger: recipient-local send windows and an even spread of messages inside them.

Time rules:

- Windows are recipient-local ``[start, end)`` (default 08:00-16:00) computed per IANA zone and
  local date with pendulum, then stored as naive UTC.
- DST is resolved explicitly. A nonexistent local time (spring forward) moves forward by the
  gap (02:30 on 2026-03-08 in New York is 03:30 EDT). An ambiguous one (fall back) takes the
  *later* instant for a window start and the *earlier* for a window end, so the window can only
  shrink, never reach outside the wall-clock hours asked for.
- A customer whose zone is uncertain (several candidate zones) gets the intersection of the
  candidates' windows; an empty intersection means no send (``no_common_window``). The send
  time is then shown in every candidate zone (``send_at_local_by_zone``); ``send_at_local`` is
  the wall time in the first candidate (alphabetical), the wave's display zone.

A wave is (channel, zone, local date, slot); slots are ``slot_minutes`` long from the window
start. Messages of one (channel, zone, local date) are spread evenly over the part of the window
after the run's as-of time, in message-key order, so slot loads differ by at most one.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Container, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

import pendulum
import polars as pl
from pendulum.tz.exceptions import AmbiguousTime, NonExistingTime

from tasks.settings import WindowSettings

__all__ = [
    "earliest_send",
    "local_to_utc",
    "plan_allowed_send_date",
    "plan_send_date",
    "send_window",
    "stagger",
    "zone_label",
]

Resolve = Literal["earlier", "later"]


def local_to_utc(day: date, at: time, zone: str, *, ambiguous: Resolve) -> datetime:
    """The naive-UTC instant of wall time ``day at`` in ``zone``.

    Nonexistent times move forward by the DST gap; ambiguous ones take the ``ambiguous``
    occurrence.
    """
    parts = (day.year, day.month, day.day, at.hour, at.minute, at.second)
    try:
        local = pendulum.datetime(*parts, tz=zone, raise_on_unknown_times=True)
    except NonExistingTime:
        local = pendulum.datetime(*parts, tz=zone, fold=1)
    except AmbiguousTime:
        local = pendulum.datetime(*parts, tz=zone, fold=0 if ambiguous == "earlier" else 1)
    return local.in_timezone("UTC").naive()


def earliest_send(as_of: datetime) -> datetime:
    """The first instant :func:`stagger` gives a message planned at ``as_of`` (naive UTC): the
    next whole minute. A window that ends by then is over for this run, even if it ends after
    ``as_of`` itself (a run at 15:59:30 local has no room left in a window ending 16:00)."""
    return as_of.replace(second=0, microsecond=0) + timedelta(minutes=1)


def zone_label(zones: Sequence[str]) -> str:
    """The zone name used for waves and analysts: the zone, or up to three candidates joined
    by '|'; a longer candidate set is '<first>|+<n-1>#<hash of the set>' so labels stay short
    (they travel into Genesys cells, max 512 characters) and distinct per set."""
    if len(zones) <= 3:
        return "|".join(zones)
    digest = hashlib.sha1("|".join(zones).encode()).hexdigest()[:6]
    return f"{zones[0]}|+{len(zones) - 1}#{digest}"


@functools.lru_cache(maxsize=65536)
def _window(zones: tuple[str, ...], day: date, start: time, end: time) -> tuple[datetime, datetime]:
    starts = [local_to_utc(day, start, z, ambiguous="later") for z in zones]
    ends = [local_to_utc(day, end, z, ambiguous="earlier") for z in zones]
    return max(starts), min(ends)


def send_window(
    zones: Sequence[str], day: date, window: WindowSettings
) -> tuple[datetime, datetime] | None:
    """Naive-UTC [start, end) of local date ``day`` in every zone of ``zones``, or None if empty."""
    start, end = _window(tuple(zones), day, window.start, window.end)
    return (start, end) if start < end else None


def plan_send_date(
    zones: Sequence[str], as_of: datetime, window: WindowSettings
) -> tuple[date, datetime, datetime] | None:
    """The first local date whose window (in all ``zones``) ends after :func:`earliest_send` of
    ``as_of`` (naive UTC).

    Returns (local date in the first zone, window start, window end) or None when the zones'
    windows never overlap.
    """
    found = plan_allowed_send_date(zones, as_of, window)
    return None if found is None else found[:3]


def plan_allowed_send_date(
    zones: Sequence[str],
    as_of: datetime,
    window: WindowSettings,
    no_send: Container[date] = (),
    *,
    horizon_days: int = 14,
) -> tuple[date, datetime, datetime, list[date]] | None:
    """Like :func:`plan_send_date`, skipping the local dates in ``no_send`` (holidays, quiet
    weekdays of the recipient: see ``tasks.send_calendar``), at most ``horizon_days`` ahead.

    Returns (local date, window start, window end, the no-send dates skipped on the way) or
    None when the windows never overlap or no allowed date is found within the horizon.
    """
    if not zones:
        return None
    earliest = earliest_send(as_of)
    here = pendulum.instance(as_of.replace(tzinfo=UTC)).in_timezone(zones[0]).date()
    skipped: list[date] = []
    for offset in range(-1, 3 + horizon_days):
        if offset > 2 and not skipped:
            return None  # as plan_send_date: only a skipped no-send day looks further ahead
        day = here + timedelta(days=offset)
        found = send_window(zones, day, window)
        if found is None or found[1] <= earliest:
            continue
        if day in no_send:
            skipped.append(day)
            continue
        return day, found[0], found[1], skipped
    return None


def _local(utc: pl.Expr, zone: str) -> pl.Expr:
    return utc.dt.replace_time_zone("UTC").dt.convert_time_zone(zone).dt.replace_time_zone(None)


def _by_zone(frame: pl.DataFrame) -> pl.Series:
    """'<zone> YYYY-MM-DD HH:MM' for every candidate zone of each row, joined by '; '."""
    zones = (
        pl.col("candidate_zones") if "candidate_zones" in frame.columns else pl.col("display_zone")
    )
    rows = frame.select(
        pl.int_range(0, pl.len(), dtype=pl.Int64).alias("_row"),
        "send_at_utc",
        zones.alias("_zones"),
        *[c for c in ("display_zone", "send_at_local") if c in frame.columns],
    )
    # One candidate zone, the display zone: its wall time is send_at_local already, so no
    # explode and no zone conversion for those rows (most of them).
    single: pl.Expr = pl.lit(False)
    quick = pl.DataFrame(schema={"_row": pl.Int64, "_text": pl.String})
    if {"candidate_zones", "display_zone", "send_at_local"} <= set(frame.columns):
        single = (pl.col("_zones") == pl.col("display_zone")).fill_null(False)
        quick = rows.filter(single).select(
            "_row",
            pl.concat_str(
                [pl.col("display_zone"), pl.col("send_at_local").dt.strftime("%Y-%m-%d %H:%M")],
                separator=" ",
            ).alias("_text"),
        )
    long = (
        rows.filter(~single)
        .select("_row", "send_at_utc", pl.col("_zones").str.split("|").alias("_zone"))
        .explode("_zone", empty_as_null=True)
        .with_columns(pl.int_range(0, pl.len()).over("_row").alias("_pos"))
    )
    parts = [
        part.with_columns(
            (
                pl.lit(f"{zone} ")
                + _local(pl.col("send_at_utc"), str(zone)).dt.strftime("%Y-%m-%d %H:%M")
            ).alias("_text")
        )
        for (zone,), part in long.filter(pl.col("_zone").is_not_null()).group_by("_zone")
    ]
    if not parts and quick.height == 0:
        return pl.Series("send_at_local_by_zone", [None] * frame.height, dtype=pl.String)
    texts = quick
    if parts:
        joined = (
            pl.concat(parts)
            .sort("_row", "_pos")
            .group_by("_row", maintain_order=True)
            .agg(pl.col("_text").str.join("; "))
        )
        texts = pl.concat([quick, joined])
    return (
        pl.DataFrame({"_row": pl.int_range(0, frame.height, dtype=pl.Int64, eager=True)})
        .join(texts, on="_row", how="left", maintain_order="left")["_text"]
        .alias("send_at_local_by_zone")
    )


def stagger(planned: pl.DataFrame, *, as_of: datetime, window: WindowSettings) -> pl.DataFrame:
    """Give each planned message a send time, slot and wave.

    ``planned`` has one row per message: message_key, channel, time_zone (label), display_zone,
    [candidate_zones], local_send_date, window_start_utc, window_end_utc. Adds send_at_utc,
    send_at_local (wall time in ``display_zone``: the zone when there is one, else the first
    candidate in alphabetical order), send_at_local_by_zone (the wall time in every candidate
    zone, ``'America/Halifax 2026-11-23 09:20; America/St_Johns 2026-11-23 09:50'``), slot,
    wave_id. Deterministic for the same input and ``as_of``.
    """
    group = ["channel", "time_zone", "local_send_date"]
    earliest = pl.lit(earliest_send(as_of))
    spread = planned.with_columns(
        pl.max_horizontal(pl.col("window_start_utc"), earliest).alias("_from"),
        (pl.col("message_key").rank("ordinal").over(group) - 1).alias("_i"),
        pl.len().over(group).alias("_n"),
    ).with_columns(
        (
            pl.col("_from")
            + pl.duration(
                microseconds=(
                    (pl.col("window_end_utc") - pl.col("_from")).dt.total_microseconds()
                    * (pl.col("_i") + 0.5)
                    / pl.col("_n")
                ).cast(pl.Int64)
            )
        )
        .dt.truncate("1s")
        .alias("send_at_utc")
    )
    slot_us = window.slot_minutes * 60 * 1_000_000
    spread = spread.with_columns(
        ((pl.col("send_at_utc") - pl.col("window_start_utc")).dt.total_microseconds() // slot_us)
        .cast(pl.Int32)
        .alias("slot")
    ).with_columns(
        (
            pl.col("window_start_utc") + pl.duration(minutes=pl.col("slot") * window.slot_minutes)
        ).alias("wave_start_utc")
    )
    parts = []
    for (zone,), part in spread.group_by(["display_zone"], maintain_order=True):
        parts.append(
            part.with_columns(_local(pl.col("send_at_utc"), str(zone)).alias("send_at_local"))
        )
    out = pl.concat(parts) if parts else spread.with_columns(send_at_local=pl.col("send_at_utc"))
    out = out.with_columns(_by_zone(out).alias("send_at_local_by_zone"))
    return out.with_columns(
        pl.concat_str(
            [
                pl.col("channel"),
                pl.col("time_zone"),
                pl.col("local_send_date").cast(pl.String),
                pl.col("slot").cast(pl.String).str.zfill(2),
            ],
            separator=":",
        ).alias("wave_id")
    ).drop("_from", "_i", "_n")
