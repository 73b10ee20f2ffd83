"""The oracle's own helpers (tests/oracle/rules.py) on hand-written values."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.oracle.rules import (
    consent_verdict,
    find_pans,
    geographic_zone,
    plain_amount,
    postal_zones,
    strict_date,
    zones_for,
)

AS_OF = datetime(2026, 11, 23, 6, tzinfo=UTC)


@pytest.mark.parametrize(
    "name",
    [
        "UTC",
        "GMT",
        "Etc/GMT+5",
        "EST",
        "PST8PDT",
        "Japan",
        "+05:30",
        "asia/kolkata",
        "America/New_Yrok",
        "Eastern Standard Time",
        "Zulu",
        None,
    ],
)
def test_non_geographic_zones_are_refused(name: str | None) -> None:
    assert geographic_zone(name) is None


def test_links_are_canonicalised() -> None:
    assert geographic_zone("Asia/Calcutta") == "Asia/Kolkata"
    assert geographic_zone("US/Eastern") == "America/New_York"
    assert geographic_zone(" Europe/Paris ") == "Europe/Paris"


def test_zone_precedence() -> None:
    # preferred zone beats everything
    assert zones_for("Asia/Kolkata", "US", "10001", "+12125550100")[1] == {"Asia/Kolkata"}
    # a non-geographic preferred zone falls to the postal code (Guam ZIP under country US)
    assert zones_for("UTC", "US", "96910", "+12125550100") == ("postal_code", {"Pacific/Guam"})
    # no postal code: the phone, never filtered by the country
    assert zones_for(None, "US", None, "+16715550100") == ("phone", {"Pacific/Guam"})
    # nothing else: the country's zones
    signal, zones = zones_for(None, "NP", None, None)
    assert (signal, zones) == ("country", {"Asia/Kathmandu"})
    assert zones_for(None, None, None, None) == ("none", frozenset())


def test_postal_codes() -> None:
    assert postal_zones("US", "601") == {"America/Puerto_Rico"}  # 00601, lost zeros
    assert postal_zones("US", "96799-1234") == {"Pacific/Pago_Pago"}
    assert postal_zones("CA", "A1C 5H2") == {"America/St_Johns"}
    assert postal_zones("AU", "2898") == {"Australia/Lord_Howe"}
    assert postal_zones("AU", "6000") == {"Australia/Perth"}
    assert postal_zones("NZ", "8942") == {"Pacific/Chatham"}
    assert postal_zones("DE", "10115") == frozenset()


def test_consent() -> None:
    t1, t2 = "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"
    assert consent_verdict([("sms", "opt_in", t1)], AS_OF) == {
        "sms": True,
        "email": True,
        "unreadable": False,
    }
    # an opt-out on an unknown channel that is its latest blocks everything
    assert (
        consent_verdict([("sms", "opt_in", t1), ("whatsapp", "OPT OUT", t2)], AS_OF)["email"]
        is False
    )
    # ties go to opt-out
    assert consent_verdict([("sms", "opt_in", t1), ("sms", "opt_out", t1)], AS_OF)["sms"] is False
    # future opt-in ignored, future opt-out counts
    future = "2026-11-25T00:00:00Z"
    assert consent_verdict([("sms", "opt_in", future)], AS_OF)["sms"] is False
    assert (
        consent_verdict([("sms", "opt_in", t1), ("sms", "stop", future)], AS_OF)["email"] is False
    )
    # spellings
    assert consent_verdict([("sms", "subscribed", t1)], AS_OF)["sms"] is True
    # any unreadable row blocks the customer
    for bad in [("sms", "maybe", t1), (None, "opt_in", t1), ("sms", "opt_in", "yesterday")]:
        assert consent_verdict([("sms", "opt_in", t1), bad], AS_OF)["email"] is False


def test_amounts_and_dates() -> None:
    assert plain_amount("  12.50 ") == Decimal("12.50")
    for bad in [
        "1e30",
        "1E3",
        "1,234.50",
        "1.234,50",
        "1_000",
        "١٢٣",
        "NaN",
        "Infinity",
        "2000000",
        "0",
        "-5",
        None,
    ]:
        assert plain_amount(bad) is None, bad
    assert strict_date("2026-03-01") is not None
    assert strict_date("2026-3-1") is None
    assert strict_date("26-11-24") is None


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1111 thanks",
        "4012.8888.8888.1881",
        "x 3782\u00a0822463\u00a010005",
        "3530. 1113. 3330. 0000",
        "４１１１１１１１１１１１１１１１",
        "٥١٠٥١٠٥١٠٥١٠٥١٠٠",
        "4000\u200d0566\u200d5566\u200d5556",
        "Hi 4111111111111111 12/28",
    ],
)
def test_pan_finder_sees_disguised_pans(text: str) -> None:
    assert find_pans(text)


def test_pan_finder_ignores_ordinary_text() -> None:
    assert find_pans("Hi Ana, $1,234.50 was due on 11/24/2026. Call +1 (800) 555-0100.") == []
    assert find_pans("4111 - - - 1111 1111 1111") == []  # three separators break the run
