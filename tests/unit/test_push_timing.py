"""Pushes every 15 minutes across the DST days of 2026 add every message inside its slot.

Independent expectation: a message's slot is [wave_start_utc, min(wave_start_utc +
slot_minutes, window_end_utc)); a push every quarter hour must add it at or after the slot
start and before the slot end, in every zone (offsets like +05:45, +12:45, -03:30, Lord Howe's
30-minute DST), on 2026-03-08 (US spring forward), 2026-03-29 (EU), 2026-11-01 (US fall back),
2026-10-25 (EU), 2026-04-05 (Lord Howe / Chatham / Australia).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

import polars as pl
import pytest

from tasks.push import addable
from tasks.settings import WindowSettings
from tasks.stagger import send_window, stagger

ZONES = sorted(
    z
    for z in available_timezones()
    if "/" in z and not z.startswith(("Etc/", "SystemV/", "US/", "posix/", "right/"))
)


def _planned(day: date, window: WindowSettings, per_zone: int) -> pl.DataFrame:
    rows = []
    for zone in ZONES:
        bounds = send_window([zone], day, window)
        if bounds is None:
            continue
        for i in range(per_zone):
            rows.append(
                {
                    "message_key": f"{zone}:{i:03d}",
                    "channel": "sms",
                    "time_zone": zone,
                    "display_zone": zone,
                    "candidate_zones": zone,
                    "local_send_date": day,
                    "window_start_utc": bounds[0],
                    "window_end_utc": bounds[1],
                }
            )
    return pl.DataFrame(rows)


def test_every_zone_offset_is_a_multiple_of_15_minutes_on_the_dst_days() -> None:
    for zone in ZONES:
        for day in (date(2026, 3, 8), date(2026, 11, 1)):
            for hour in range(0, 24, 3):
                offset = datetime(day.year, day.month, day.day, hour, tzinfo=ZoneInfo(zone))
                assert offset.utcoffset().total_seconds() % 900 == 0, zone


@pytest.mark.parametrize(
    "day",
    [date(2026, 3, 8), date(2026, 3, 29), date(2026, 4, 5), date(2026, 10, 25), date(2026, 11, 1)],
)
@pytest.mark.parametrize(
    "window",
    [
        WindowSettings(),
        WindowSettings(start=time(8, 15), end=time(20, 50), slot_minutes=45),
        WindowSettings(start=time(9, 30), end=time(12, 0), slot_minutes=15),
    ],
    ids=["08-16-60", "0815-2050-45", "0930-12-15"],
)
def test_pushes_every_15_minutes_add_each_message_inside_its_slot(day, window) -> None:
    as_of = datetime.combine(day - timedelta(days=1), time(0, 0))
    planned = stagger(_planned(day, window, per_zone=7), as_of=as_of, window=window)
    waiting = planned.with_columns(pl.lit(None, pl.Datetime("us")).alias("added_at"))
    added = []
    now = as_of
    while now < as_of + timedelta(days=3) and waiting.height:
        batch = addable(waiting, now=now).with_columns(pl.lit(now).alias("added_at"))
        added.append(batch)
        waiting = waiting.join(batch.select("message_key"), on="message_key", how="anti")
        now += timedelta(minutes=15)
    assert waiting.height == 0, waiting.select("message_key", "wave_start_utc").head()
    result = pl.concat(added)
    assert result.height == planned.height
    slot_end = pl.min_horizontal(
        pl.col("wave_start_utc") + pl.duration(minutes=window.slot_minutes),
        pl.col("window_end_utc"),
    )
    late = result.filter(
        (pl.col("added_at") < pl.col("wave_start_utc")) | (pl.col("added_at") >= slot_end)
    )
    assert late.height == 0, late.select("message_key", "wave_start_utc", "added_at").head()
    # never before the local window opens, never after it closes
    outside = result.filter(
        (pl.col("added_at") < pl.col("window_start_utc"))
        | (pl.col("added_at") >= pl.col("window_end_utc"))
    )
    assert outside.height == 0
