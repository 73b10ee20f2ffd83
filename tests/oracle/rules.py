"""The oracle's own reading of the rules, written from the rule text (README and issue 7).

Nothing here imports the pipeline. Each helper is small and pure so it can be unit-tested on
hand-written rows.
"""

from __future__ import annotations

import re
import unicodedata
import zoneinfo
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path

import phonenumbers
from phonenumbers import timezone as phone_timezone

__all__ = [
    "GEOGRAPHIC_AREAS",
    "canonical_zone",
    "consent_verdict",
    "country_zones",
    "e164",
    "find_pans",
    "geographic_zone",
    "luhn_valid",
    "parse_instant",
    "phone_zones",
    "plain_amount",
    "postal_zones",
    "strict_date",
    "zones_for",
]

# ---------------------------------------------------------------- time zones

GEOGRAPHIC_AREAS = frozenset(
    {
        "Africa",
        "America",
        "Antarctica",
        "Arctic",
        "Asia",
        "Atlantic",
        "Australia",
        "Europe",
        "Indian",
        "Pacific",
        # backward-compatible country areas: Area/Location names of real places
        "Brazil",
        "Canada",
        "Chile",
        "Mexico",
        "US",
    }
)
_ZONE_NAME = re.compile(r"^[A-Z][A-Za-z]+(/[A-Z][A-Za-z0-9_+\-]*)+$")


def _tzdata_dir() -> Path | None:
    try:
        import tzdata
    except ImportError:  # pragma: no cover - tzdata is a dependency
        return None
    return Path(tzdata.__file__).parent / "zoneinfo"


@cache
def _links() -> dict[str, str]:
    """Link name -> canonical zone, from tzdata.zi (``L target link`` lines)."""
    folder = _tzdata_dir()
    links: dict[str, str] = {}
    if folder is None or not (folder / "tzdata.zi").exists():
        return links
    for line in (folder / "tzdata.zi").read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "L":
            links[parts[2]] = parts[1]
    return links


def canonical_zone(name: str) -> str:
    """Follow tzdata links to the canonical zone name (``Asia/Calcutta`` -> ``Asia/Kolkata``)."""
    links = _links()
    seen = 0
    while name in links and seen < 5:
        name, seen = links[name], seen + 1
    return name


def geographic_zone(raw: str | None) -> str | None:
    """The canonical zone of a geographic IANA name (Area/Location), else ``None``.

    Never UTC/GMT/Etc/abbreviations/POSIX rules/offsets/Windows names/misspellings; the name is
    case-sensitive (``asia/kolkata`` is misspelt). Surrounding blanks are tolerated.
    """
    if raw is None:
        return None
    name = raw.strip()
    if not _ZONE_NAME.match(name) or name.split("/", 1)[0] not in GEOGRAPHIC_AREAS:
        return None
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None
    return canonical_zone(name)


@cache
def _country_zone_table() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    folder = _tzdata_dir()
    candidates = [folder / "zone.tab"] if folder else []
    candidates.append(Path("/usr/share/zoneinfo/zone.tab"))
    for path in candidates:
        if path.exists():
            for line in path.read_text().splitlines():
                if line.startswith("#") or not line.strip():
                    continue
                parts = line.split("\t")
                table.setdefault(parts[0], set()).add(canonical_zone(parts[2]))
            break
    return {k: frozenset(v) for k, v in table.items()}


def country_zones(country: str | None) -> frozenset[str]:
    """Every zone of an ISO 3166 country (zone.tab), empty for unknown or missing."""
    if country is None:
        return frozenset()
    return _country_zone_table().get(country.strip().upper(), frozenset())


@cache
def _zip_table() -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    import zipcodes

    by_zip: dict[str, set[str]] = {}
    by_prefix: dict[str, set[str]] = {}
    for entry in zipcodes.list_all():
        zone = entry.get("timezone")
        if not zone:
            continue
        zone = canonical_zone(zone)
        by_zip.setdefault(entry["zip_code"], set()).add(zone)
        by_prefix.setdefault(entry["zip_code"][:3], set()).add(zone)
    return (
        {k: frozenset(v) for k, v in by_zip.items()},
        {k: frozenset(v) for k, v in by_prefix.items()},
    )


_US_ZIP = re.compile(r"^(\d{3,5})(?:[- ]?(\d{4}))?$")


def us_zip5(raw: str) -> str | None:
    """Five-digit ZIP from ``12345``, ``12345-6789``, ``123456789``, or one with lost zeros."""
    text = raw.strip()
    if re.fullmatch(r"\d{9}", text):
        return text[:5]
    m = _US_ZIP.match(text)
    if not m:
        return None
    return m.group(1).zfill(5)


# Canada: first letter of the FSA -> province zone; a few FSAs straddle another zone.
_CA_LETTER = {
    "A": "America/St_Johns",
    "B": "America/Halifax",
    "C": "America/Halifax",
    "E": "America/Moncton",
    "G": "America/Toronto",
    "H": "America/Toronto",
    "J": "America/Toronto",
    "K": "America/Toronto",
    "L": "America/Toronto",
    "M": "America/Toronto",
    "N": "America/Toronto",
    "P": "America/Toronto",
    "R": "America/Winnipeg",
    "S": "America/Regina",
    "T": "America/Edmonton",
    "V": "America/Vancouver",
    "Y": "America/Whitehorse",
}
_CA_FSA = {
    "A0P": frozenset({"America/Goose_Bay"}),  # Labrador
    "A0R": frozenset({"America/Goose_Bay"}),
    "A2V": frozenset({"America/Goose_Bay"}),  # Labrador City
    "G0G": frozenset({"America/Toronto", "America/Puerto_Rico"}),  # Côte-Nord east (Blanc-Sablon)
    "P0V": frozenset({"America/Winnipeg"}),  # north-western Ontario
    "P0W": frozenset({"America/Winnipeg"}),
    "P8T": frozenset({"America/Winnipeg"}),
    "P9N": frozenset({"America/Winnipeg"}),  # Kenora
    "S9V": frozenset({"America/Edmonton"}),  # Lloydminster
    "V0A": frozenset({"America/Vancouver", "America/Edmonton"}),  # East Kootenay
    "V0B": frozenset({"America/Vancouver", "America/Edmonton"}),
    "V1C": frozenset({"America/Edmonton"}),  # Cranbrook
    "V0C": frozenset({"America/Dawson_Creek", "America/Fort_Nelson"}),
    "X0A": frozenset({"America/Iqaluit"}),
    "X0B": frozenset({"America/Cambridge_Bay"}),
    "X0C": frozenset({"America/Rankin_Inlet"}),
    "X0E": frozenset({"America/Edmonton"}),
    "X0G": frozenset({"America/Edmonton"}),
    "X1A": frozenset({"America/Edmonton"}),  # Yellowknife
}
_CA_POSTAL = re.compile(r"^([ABCEGHJKLMNPRSTVXY]\d[A-Z])\s*(\d[A-Z]\d)?$")
_AU_STATE = {
    "0": "Australia/Darwin",
    "2": "Australia/Sydney",
    "3": "Australia/Melbourne",
    "4": "Australia/Brisbane",
    "5": "Australia/Adelaide",
    "6": "Australia/Perth",
    "7": "Australia/Hobart",
    "8": "Australia/Melbourne",
    "9": "Australia/Brisbane",
}
_AU_EXCEPTIONS = {
    "2898": "Australia/Lord_Howe",
    "2880": "Australia/Broken_Hill",
    "6798": "Indian/Christmas",
    "6799": "Indian/Cocos",
}
_GB_POSTAL = re.compile(r"^[A-Z]{1,2}\d[A-Z\d]?\s*(\d[A-Z]{2})?$")
_IE_POSTAL = re.compile(r"^(?:[AC-FHKNPRTV-Y]\d{2}|D6W)\s*[0-9AC-FHKNPRTV-Y]{4}$")


def postal_zones(country: str | None, postal: str | None) -> frozenset[str]:
    """Zones of a postal code in its country, from public facts; empty when not recognised."""
    if country is None or postal is None or not postal.strip():
        return frozenset()
    cc = country.strip().upper()
    code = postal.strip().upper()
    if cc == "US":
        zip5 = us_zip5(code)
        if zip5 is None:
            return frozenset()
        by_zip, by_prefix = _zip_table()
        return by_zip.get(zip5) or by_prefix.get(zip5[:3], frozenset())
    if cc == "CA":
        m = _CA_POSTAL.match(code)
        if not m:
            return frozenset()
        fsa = m.group(1)
        if fsa in _CA_FSA:
            return _CA_FSA[fsa]
        zone = _CA_LETTER.get(fsa[0])
        return frozenset({zone}) if zone else frozenset()
    if cc == "AU":
        if not re.fullmatch(r"\d{4}", code):
            return frozenset()
        return frozenset({_AU_EXCEPTIONS.get(code) or _AU_STATE[code[0]]})
    if cc == "NZ":
        if not re.fullmatch(r"\d{4}", code):
            return frozenset()
        return frozenset({"Pacific/Chatham" if code == "8942" else "Pacific/Auckland"})
    if cc == "GB":
        return frozenset({"Europe/London"}) if _GB_POSTAL.match(code) else frozenset()
    if cc == "IE":
        return frozenset({"Europe/Dublin"}) if _IE_POSTAL.match(code) else frozenset()
    if cc == "IN":
        return frozenset({"Asia/Kolkata"}) if re.fullmatch(r"[1-9]\d{5}", code) else frozenset()
    if cc == "NP":
        return frozenset({"Asia/Kathmandu"}) if re.fullmatch(r"\d{5}", code) else frozenset()
    return frozenset()


def _parse_phone(raw: str | None, country: str | None) -> phonenumbers.PhoneNumber | None:
    if raw is None or not raw.strip():
        return None
    region = (country or "").strip().upper() or None
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


def phone_zones(raw: str | None, country: str | None) -> frozenset[str]:
    """Zones phonenumbers gives for a valid number (not filtered by the country)."""
    number = _parse_phone(raw, country)
    if number is None:
        return frozenset()
    zones = {
        canonical_zone(z)
        for z in phone_timezone.time_zones_for_number(number)
        if z != "Etc/Unknown"
    }
    return frozenset(zones)


def e164(raw: str | None, country: str | None) -> str | None:
    number = _parse_phone(raw, country)
    if number is None:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def zones_for(
    preferred_timezone: str | None,
    country: str | None,
    postal_code: str | None,
    phone: str | None,
) -> tuple[str, frozenset[str]]:
    """(signal, zones) by precedence: preferred zone > postal code > phone > country."""
    zone = geographic_zone(preferred_timezone)
    if zone is not None:
        return "preferred_timezone", frozenset({zone})
    for signal, zones in (
        ("postal_code", postal_zones(country, postal_code)),
        ("phone", phone_zones(phone, country)),
        ("country", country_zones(country)),
    ):
        if zones:
            return signal, zones
    return "none", frozenset()


# ---------------------------------------------------------------- consent

_OUT = {"optout", "unsubscribe", "unsubscribed", "stop", "revoked", "withdrawn"}
_IN = {"optin", "subscribe", "subscribed", "start", "yes"}
_CHANNELS = {"sms": "sms", "email": "email", "e-mail": "email", "all": "all"}


def consent_status(raw: str | None) -> str | None:
    """``opt_in`` / ``opt_out`` for the known spellings, else ``None`` (unreadable)."""
    if raw is None:
        return None
    key = re.sub(r"[\s_\-]+", "", raw.strip().lower())
    if key in _OUT:
        return "opt_out"
    if key in _IN:
        return "opt_in"
    return None


_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?")


def parse_instant(raw: str | None) -> datetime | None:
    """A strict ISO-8601 instant (``2026-11-23T06:00:00Z`` or with an offset), UTC; else None."""
    if raw is None:
        return None
    text = raw.strip()
    if not _INSTANT.fullmatch(text):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def consent_verdict(
    events: Iterable[tuple[str | None, str | None, str | None]], as_of: datetime
) -> dict[str, bool]:
    """Which channels may be used, from (channel, status, occurred_at) raw events.

    Latest event per channel name wins, ties to opt-out; an opt-out that is the latest on any
    channel name (known or not) blocks everything; after ``as_of`` opt-ins are ignored and
    opt-outs count; SMS needs an opt-in (on sms or all), e-mail needs no opt-out; any unreadable
    row blocks the customer.
    """
    per_key: dict[str, list[tuple[datetime, bool]]] = {}
    for channel, status, occurred in events:
        verdict = consent_status(status)
        at = parse_instant(occurred)
        name = (channel or "").strip().lower()
        if verdict is None or at is None or not name:
            return {"sms": False, "email": False, "unreadable": True}
        if at > as_of and verdict == "opt_in":
            continue
        key = _CHANNELS.get(name, name)
        per_key.setdefault(key, []).append((at, verdict == "opt_out"))
    blocked = any(max(items)[1] for items in per_key.values())

    def latest_opt_in(channel: str) -> bool:
        items = per_key.get(channel, []) + per_key.get("all", [])
        return bool(items) and not max(items)[1]

    return {
        "sms": not blocked and latest_opt_in("sms"),
        "email": not blocked,
        "unreadable": False,
    }


# ---------------------------------------------------------------- invoices

_PLAIN_DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")


def plain_amount(raw: str | None, maximum: Decimal = Decimal(1_000_000)) -> Decimal | None:
    """A plain ASCII decimal (after trimming blanks) within (0, maximum], else None."""
    if raw is None:
        return None
    text = raw.strip()
    if not _PLAIN_DECIMAL.match(text):
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if Decimal(0) < value <= maximum else None


def strict_date(raw: str | None) -> date | None:
    """A strict ISO date ``YYYY-MM-DD``, else None."""
    if raw is None or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw.strip()):
        return None
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        return None


# ---------------------------------------------------------------- PANs


def luhn_valid(digits: str) -> bool:
    if not digits or not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _digit_runs(text: str, max_gap: int = 2) -> list[str]:
    """Runs of (folded) digits where consecutive digits are at most ``max_gap`` separators apart.

    Any Unicode decimal digit counts (full-width, Arabic-Indic ...); a letter ends the run; any
    other character (space, NBSP, dot, dash, zero-width joiner ...) is a separator.
    """
    runs: list[str] = []
    current: list[str] = []
    gap = 0
    for ch in text:
        value = unicodedata.decimal(ch, None)
        if value is not None:
            if gap > max_gap and current:
                runs.append("".join(current))
                current = []
            current.append(str(value))
            gap = 0
        elif ch.isalnum():
            if current:
                runs.append("".join(current))
            current, gap = [], 0
        else:
            gap += 1
    if current:
        runs.append("".join(current))
    return runs


def find_pans(text: str | None) -> list[str]:
    """Every Luhn-valid 13-19 digit window of every digit run in ``text``."""
    if not text:
        return []
    found: list[str] = []
    for run in _digit_runs(text):
        for length in range(13, 20):
            for start in range(0, len(run) - length + 1):
                window = run[start : start + length]
                if luhn_valid(window):
                    found.append(window)
    return found
