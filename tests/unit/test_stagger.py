from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from tasks.eligibility import PRIOR_SCHEMA
from tasks.normalize import normalize
from tasks.plan import build_plan
from tasks.render import load_templates
from tasks.settings import Settings, WindowSettings
from tasks.stagger import local_to_utc, plan_send_date, send_window, stagger
from tests import factories as f


@pytest.mark.parametrize(
    ("day", "at", "zone", "ambiguous", "expected"),
    [
        (date(2026, 3, 8), time(8, 0), "America/New_York", "later", datetime(2026, 3, 8, 12, 0)),
        (date(2026, 3, 7), time(8, 0), "America/New_York", "later", datetime(2026, 3, 7, 13, 0)),
        (date(2026, 3, 8), time(2, 30), "America/New_York", "later", datetime(2026, 3, 8, 7, 30)),
        (
            date(2026, 11, 1),
            time(1, 30),
            "America/New_York",
            "earlier",
            datetime(2026, 11, 1, 5, 30),
        ),
        (date(2026, 11, 1), time(1, 30), "America/New_York", "later", datetime(2026, 11, 1, 6, 30)),
        (date(2026, 11, 1), time(8, 0), "America/New_York", "later", datetime(2026, 11, 1, 13, 0)),
        (
            date(2026, 10, 4),
            time(2, 15),
            "Australia/Lord_Howe",
            "later",
            datetime(2026, 10, 3, 15, 45),
        ),
        (
            date(2026, 4, 5),
            time(1, 45),
            "Australia/Lord_Howe",
            "earlier",
            datetime(2026, 4, 4, 14, 45),
        ),
        (
            date(2026, 4, 5),
            time(1, 45),
            "Australia/Lord_Howe",
            "later",
            datetime(2026, 4, 4, 15, 15),
        ),
        (date(2026, 11, 23), time(8, 0), "Asia/Kathmandu", "later", datetime(2026, 11, 23, 2, 15)),
        (
            date(2026, 11, 23),
            time(8, 0),
            "Pacific/Chatham",
            "later",
            datetime(2026, 11, 22, 18, 15),
        ),
        (
            date(2026, 11, 23),
            time(8, 0),
            "America/St_Johns",
            "later",
            datetime(2026, 11, 23, 11, 30),
        ),
    ],
    ids=[
        "ny-spring-forward-day-window-start-is-edt",
        "ny-day-before-spring-forward-is-est",
        "ny-nonexistent-0230-moves-forward-to-0330-edt",
        "ny-ambiguous-0130-earlier-is-edt",
        "ny-ambiguous-0130-later-is-est",
        "ny-fall-back-day-window-start-is-est",
        "lord-howe-nonexistent-0215-moves-forward-half-hour",
        "lord-howe-ambiguous-0145-earlier-is-plus-11",
        "lord-howe-ambiguous-0145-later-is-plus-1030",
        "kathmandu-plus-0545",
        "chatham-plus-1345-summer",
        "newfoundland-minus-0330",
    ],
)
def test_local_to_utc_resolves_dst_explicitly(day, at, zone, ambiguous, expected) -> None:
    assert local_to_utc(day, at, zone, ambiguous=ambiguous) == expected


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("America/New_York", date(2026, 3, 8), 8),
        ("America/New_York", date(2026, 11, 1), 8),
        ("Australia/Lord_Howe", date(2026, 10, 4), 8),
        ("Australia/Lord_Howe", date(2026, 4, 5), 8),
    ],
    ids=["ny-spring", "ny-fall", "lord-howe-spring", "lord-howe-fall"],
)
def test_window_on_dst_days_keeps_its_wall_clock_length(zone, day, hours) -> None:
    start, end = send_window([zone], day, WindowSettings())
    assert (end - start).total_seconds() == hours * 3600


def test_window_near_a_transition_never_leaves_the_local_hours() -> None:
    window = WindowSettings(start=time(8, 0), end=time(21, 0))
    start, end = send_window(["America/New_York"], date(2026, 11, 1), window)
    assert (start, end) == (datetime(2026, 11, 1, 13, 0), datetime(2026, 11, 2, 2, 0))


def test_intersection_of_candidate_zones_is_the_common_part() -> None:
    start, end = send_window(
        ["America/New_York", "Pacific/Honolulu"], date(2026, 11, 23), WindowSettings()
    )
    assert (start, end) == (datetime(2026, 11, 23, 18, 0), datetime(2026, 11, 23, 21, 0))


def test_zones_without_overlap_have_no_window() -> None:
    assert (
        send_window(["Pacific/Chatham", "Pacific/Honolulu"], date(2026, 11, 23), WindowSettings())
        is None
    )
    assert (
        plan_send_date(
            ["Pacific/Chatham", "Pacific/Honolulu"], datetime(2026, 11, 23, 6), WindowSettings()
        )
        is None
    )


@pytest.mark.parametrize(
    ("zone", "as_of", "expected_day"),
    [
        ("America/New_York", datetime(2026, 11, 23, 6), date(2026, 11, 23)),
        ("Pacific/Honolulu", datetime(2026, 11, 23, 6), date(2026, 11, 23)),
        ("Pacific/Chatham", datetime(2026, 11, 23, 6), date(2026, 11, 24)),
        ("Asia/Kolkata", datetime(2026, 11, 23, 6), date(2026, 11, 23)),
        ("Asia/Kolkata", datetime(2026, 11, 23, 11), date(2026, 11, 24)),
    ],
    ids=[
        "ny-before-window",
        "honolulu-previous-evening",
        "chatham-after-window",
        "kolkata-inside-window",
        "kolkata-after-window",
    ],
)
def test_send_date_is_the_first_window_not_yet_over(zone, as_of, expected_day) -> None:
    day, start, end = plan_send_date([zone], as_of, WindowSettings())
    assert day == expected_day
    assert end > as_of
    assert start < end


def _planned(n: int, zone: str = "America/New_York") -> pl.DataFrame:
    start, end = send_window([zone], date(2026, 11, 23), WindowSettings())
    return pl.DataFrame(
        {
            "message_key": [f"{i:08x}" for i in range(n)],
            "channel": ["sms"] * n,
            "time_zone": [zone] * n,
            "display_zone": [zone] * n,
            "local_send_date": [date(2026, 11, 23)] * n,
            "window_start_utc": [start] * n,
            "window_end_utc": [end] * n,
        }
    )


@pytest.mark.parametrize(
    "n", [1, 7, 8, 1000], ids=["one", "fewer-than-slots", "one-per-slot", "thousand"]
)
def test_stagger_spreads_evenly_inside_the_window(n) -> None:
    window = WindowSettings()
    out = stagger(_planned(n), as_of=datetime(2026, 11, 23, 6), window=window)
    local = out["send_at_local"]
    assert local.min() >= datetime(2026, 11, 23, 8, 0)
    assert local.max() < datetime(2026, 11, 23, 16, 0)
    per_slot = out.group_by("slot").len()["len"]
    if n >= 8:
        assert per_slot.max() - per_slot.min() <= 1
        assert per_slot.len() == 8
    assert out["wave_id"].str.starts_with("sms:America/New_York:2026-11-23:").all()


def test_stagger_uses_only_the_rest_of_a_window_already_open() -> None:
    as_of = datetime(2026, 11, 23, 16, 30)
    out = stagger(_planned(100), as_of=as_of, window=WindowSettings())
    assert out["send_at_utc"].min() > as_of
    assert out["send_at_local"].max() < datetime(2026, 11, 23, 16, 0)


def test_stagger_is_deterministic() -> None:
    a = stagger(_planned(50), as_of=datetime(2026, 11, 23, 6), window=WindowSettings())
    b = stagger(_planned(50).reverse(), as_of=datetime(2026, 11, 23, 6), window=WindowSettings())
    assert a.sort("message_key").equals(b.sort("message_key"))


def test_halifax_and_st_johns_share_only_the_common_part() -> None:
    # 2026-11-23: Halifax is UTC-4 (08:00 = 12:00Z, 16:00 = 20:00Z), St John's UTC-3:30
    # (08:00 = 11:30Z, 16:00 = 19:30Z): the common window is 12:00Z-19:30Z.
    got = send_window(["America/Halifax", "America/St_Johns"], date(2026, 11, 23), WindowSettings())
    assert got == (datetime(2026, 11, 23, 12, 0), datetime(2026, 11, 23, 19, 30))


def _two_zone_planned(n: int) -> pl.DataFrame:
    zones = ["America/Halifax", "America/St_Johns"]
    start, end = send_window(zones, date(2026, 11, 23), WindowSettings())
    return pl.DataFrame(
        {
            "message_key": [f"{i:08x}" for i in range(n)],
            "channel": ["sms"] * n,
            "time_zone": ["|".join(zones)] * n,
            "candidate_zones": ["|".join(zones)] * n,
            "display_zone": [zones[0]] * n,
            "local_send_date": [date(2026, 11, 23)] * n,
            "window_start_utc": [start] * n,
            "window_end_utc": [end] * n,
        }
    )


def _wall(utc: datetime, zone: str) -> datetime:
    from datetime import UTC
    from zoneinfo import ZoneInfo

    return utc.replace(tzinfo=UTC).astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def test_send_time_is_shown_in_every_candidate_zone() -> None:
    out = stagger(_two_zone_planned(20), as_of=datetime(2026, 11, 23, 6), window=WindowSettings())
    for row in out.iter_rows(named=True):
        halifax = _wall(row["send_at_utc"], "America/Halifax")
        st_johns = _wall(row["send_at_utc"], "America/St_Johns")
        assert row["send_at_local"] == halifax  # the first candidate, documented
        assert row["send_at_local_by_zone"] == (
            f"America/Halifax {halifax:%Y-%m-%d %H:%M}; America/St_Johns {st_johns:%Y-%m-%d %H:%M}"
        )
        for local in (halifax, st_johns):
            assert time(8, 0) <= local.time() < time(16, 0)


def test_one_zone_send_at_local_by_zone_is_that_zone() -> None:
    out = stagger(
        _planned(5, "Asia/Kathmandu"), as_of=datetime(2026, 11, 23, 0), window=WindowSettings()
    )
    for row in out.iter_rows(named=True):
        wall = _wall(row["send_at_utc"], "Asia/Kathmandu")
        assert row["send_at_local"] == wall
        assert row["send_at_local_by_zone"] == f"Asia/Kathmandu {wall:%Y-%m-%d %H:%M}"


@pytest.mark.parametrize(
    "as_of",
    [datetime(2026, 11, 23, 20, 59, 0), datetime(2026, 11, 23, 20, 59, 59, 999_999)],
    ids=["last-minute-starts", "last-microsecond"],
)
def test_a_run_in_the_last_minute_of_a_window_plans_the_next_day(as_of) -> None:
    # New York 16:00 is 21:00Z: the earliest send of a run at 20:59:xx is 21:00Z, the end.
    assert plan_send_date(["America/New_York"], as_of, WindowSettings())[0] == date(2026, 11, 24)
    assert plan_send_date(
        ["America/New_York"], datetime(2026, 11, 23, 20, 58, 59), WindowSettings()
    )[0] == date(2026, 11, 23)


@pytest.mark.parametrize(
    ("zone", "as_of"),
    [
        ("America/New_York", datetime(2026, 11, 23, 20, 59, 30)),
        ("Asia/Kathmandu", datetime(2026, 11, 23, 10, 14, 1)),
        ("Australia/Adelaide", datetime(2026, 11, 23, 5, 29, 59)),
    ],
    ids=["new-york", "kathmandu-5h45", "adelaide-10h30-dst"],
)
def test_no_planned_send_at_or_after_the_window_end(zone, as_of) -> None:
    """A build in the last minute of a zone's window: every planned send lies inside the local
    window (checked with zoneinfo), not at its end, where push-waves could never hand it over."""
    local = as_of.replace(tzinfo=UTC).astimezone(ZoneInfo(zone))
    assert local.time() >= time(15, 59), "the case must sit in the window's last minute"
    customer = f.customer(preferred_timezone=zone)
    cid = customer["customer_id"]
    invoices = [  # T-1 on the local date of the run and on the next one
        f.invoice(cid, due_date=str(local.date() + timedelta(days=k))) for k in (1, 2)
    ]
    extracted = f.extracted([customer], invoices, [f.consent(cid, "sms")])
    plan = build_plan(
        extracted,
        normalize(extracted, as_of=as_of),
        pl.DataFrame(schema=PRIOR_SCHEMA),
        as_of=as_of,
        settings=Settings(),
        templates=load_templates(),
        new_token=lambda: "tok",
    )
    assert plan.messages.height == 1
    for send, day in plan.messages.select("send_at_utc", "local_send_date").iter_rows():
        wall = send.replace(tzinfo=UTC).astimezone(ZoneInfo(zone))
        assert time(8, 0) <= wall.time() < time(16, 0), wall
        assert wall.date() == day == local.date() + timedelta(days=1)
        assert send > as_of
