"""Time zone per customer: which IANA zones a customer can be in, and which signal said so.

Pure and cached per distinct value (the callers dedupe first); :func:`postal_zones_column`
gives :func:`postal_zones`' answers for a whole column of postal codes (polars expressions and
lookup frames built once per process). Signals, first that answers wins:

1. ``preferred_timezone``, only when it is a *geographic* IANA zone (:func:`check_zone`).
2. The postal code (:func:`postal_zones`), per the country table below.
3. The phone number's zones (phonenumbers' geocoding data, :func:`phone_zones`).
4. The country's zones (tzdata's ``zone.tab``).

A signal's zones are used as they are: never intersected with the country's list and never
replaced by all the country's zones (a US customer with a Guam number stays on Pacific/Guam).
Several candidate zones mean the message may only go inside the intersection of their windows.

Zone names: a geographic zone is ``Area/Location`` with ``Area`` one of :data:`GEOGRAPHIC_AREAS`,
or a legacy country folder (:data:`LEGACY_FOLDERS`, e.g. ``US/Eastern``) whose link target is
geographic. Every accepted name is canonicalised through tzdata's links (``Asia/Calcutta`` ->
``Asia/Kolkata``, ``America/St_Thomas`` -> ``America/Puerto_Rico``, ``America/Atikokan`` ->
``America/Panama``: same clock, one name per clock). Rejected, by form and whatever tzdata links
them to: UTC/GMT/``Etc/*``, abbreviations and POSIX names (EST, IST, CET, EST5EDT), single-word
aliases (Japan, GB, NZ-CHAT), offsets (+05:30, UTC-3), Windows / display names (Eastern Standard
Time), wrong case, misspellings and anything else not in the zone database.

Postal codes, per country (a value that does not match the country's pattern is no signal; a
country not listed is no signal):

======= ===================================== ================================================
country pattern (after trim, upper-case)      zones
======= ===================================== ================================================
US, PR, ``NNNNN``, ``NNNNN-NNNN``,            the ``zipcodes`` package's ``timezone`` (offline
GU, VI, ``NNNNNNNNN``; a lost leading zero    USPS-based data): territories give
AS, MP  (``NNNN``, ``NNNN-NNNN``) is padded   Pacific/Pago_Pago, America/Puerto_Rico, Pacific/
        back                                  Guam, America/St_Thomas (-> Puerto_Rico), Pacific/
                                              Saipan (-> Guam). Empty or junk zones (military
                                              APO/FPO, one Alaska PO box) are no signal; FM ZIPs
                                              (package says Chuuk for all four states) give the
                                              three FM zones. A well-formed ZIP the
                                              package does not know (or whose zone is junk)
                                              takes every zone of its 3-digit area; an area
                                              without any known ZIP gives no signal.
CA      ``A9A 9A9`` (space optional)          first letter -> province zone; minority-zone FSAs
                                              from :data:`_CA_FSA` (sources in comments)
GB      UK postcode incl. BT (``GIR 0AA`` ok) Europe/London
IE      Eircode: routing key ``A99``/``D6W``  Europe/Dublin
        + 4-character identifier
IN      6-digit PIN (first digit 1-9)         Asia/Kolkata
NP      5 digits                              Asia/Kathmandu
NZ      4 digits (3 digits: lost zero)        Pacific/Auckland; 8942 (Chatham Islands)
                                              Pacific/Chatham
AU      4 digits (3 digits: lost zero)        state from the first digits (:func:`_au_zones`);
                                              2898 Lord Howe, 2880 Broken Hill, 2899 Norfolk
                                              Island, 6798 Christmas Island, 6799 Cocos
                                              Islands; 6443 (Eucla, Madura, Mundrabilla,
                                              Cocklebiddy on the unofficial +08:45 clock, but
                                              also Balladonia / Fraser Range on Perth time) is
                                              ambiguous: Australia/Eucla and Australia/Perth
======= ===================================== ================================================
"""

from __future__ import annotations

import difflib
import functools
import re
import threading
from collections.abc import Callable, Iterable
from importlib import resources
from zoneinfo import available_timezones

import polars as pl

__all__ = [
    "GEOGRAPHIC_AREAS",
    "LEGACY_FOLDERS",
    "ZONE_RULE",
    "ZONE_SOURCES",
    "canonical_zone",
    "check_zone",
    "country_zones",
    "geographic_zone",
    "phone_zones",
    "postal_zones",
    "postal_zones_column",
    "prepare_postal_frames",
    "resolve_zones",
    "wait_for_background",
]

ZONE_RULE = "timezone_not_geographic"
"""Field quarantine rule for a preferred_timezone that is not a geographic IANA zone."""

ZONE_SOURCES = ("preferred", "postal_code", "phone", "country", "unknown")

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
    }
)
LEGACY_FOLDERS = frozenset({"US", "Canada", "Mexico", "Brazil", "Chile"})

_UTC_NAMES = frozenset(
    {"UTC", "UCT", "GMT", "GMT0", "GMT+0", "GMT-0", "Greenwich", "Universal", "Zulu", "Z", "UT"}
)
# Offsets: +05:30, -3, UTC+5:30, GMT-03, UTC −3 (unicode minus), 'UTC +0530'.
_OFFSET = re.compile(r"(?i)(?:UTC|GMT|UT|Z)?\s*[+\-\u2212]\s*\d{1,2}(?:[:.h]?\d{2})?")
# Abbreviations and POSIX TZ strings: EST, IST, CEST, EST5, EST5EDT, PST8PDT, <+0530>-5:30.
_ABBREVIATION = re.compile(r"<?[A-Z]{2,6}>?(?:[+\-]?\d{1,2}(?::\d{2})?(?:[A-Z]{2,6})?)?(?:,.*)?")
# All-caps single words in tzdata that are country aliases, not abbreviations.
_COUNTRY_ALIASES = frozenset({"GB", "NZ", "PRC", "ROC", "ROK"})


@functools.cache
def _valid_zones() -> frozenset[str]:
    return frozenset(available_timezones())


@functools.cache
def _zone_tab() -> dict[str, tuple[str, ...]]:
    text = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text("utf-8")
    zones: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        country, _coords, zone, *_ = line.split("\t")
        zones.setdefault(country, []).append(zone)
    return {c: tuple(sorted(z)) for c, z in zones.items()}


@functools.cache
def _zone_links() -> dict[str, str]:
    """Legacy alias -> canonical zone (``L target alias`` lines of tzdata.zi)."""
    text = resources.files("tzdata").joinpath("zoneinfo", "tzdata.zi").read_text("utf-8")
    links = {}
    for line in text.splitlines():
        if line.startswith("L "):
            _, target, alias = line.split()
            links[alias] = target
    return links


@functools.cache
def _by_lower() -> dict[str, str]:
    return {z.lower(): z for z in _valid_zones()}


@functools.cache
def _geographic_names() -> tuple[str, ...]:
    return tuple(sorted(z for z in _valid_zones() if z.partition("/")[0] in GEOGRAPHIC_AREAS))


def canonical_zone(zone: str) -> str:
    """The canonical IANA name of ``zone`` ('US/Eastern' -> 'America/New_York')."""
    return _zone_links().get(zone, zone)


def country_zones(country: str) -> tuple[str, ...]:
    """IANA zones of an ISO 3166-1 alpha-2 country (from tzdata's zone.tab), sorted."""
    return _zone_tab().get(country, ())


def _area(zone: str) -> str:
    return zone.partition("/")[0] if "/" in zone else ""


@functools.lru_cache(maxsize=65536)
def check_zone(raw: str | None) -> tuple[str | None, str | None]:
    """(canonical geographic zone, None) or (None, why it is rejected) for one raw zone name.

    Blank is (None, None): no signal and nothing to quarantine. No case folding: 'asia/tokyo'
    is rejected (the reason suggests 'Asia/Tokyo'). Never maps an abbreviation to a zone.
    """
    if raw is None:
        return None, None
    name = raw.strip()
    if not name:
        return None, None
    if len(name) > 64 or not name.isprintable():
        return None, "not in the time zone database"
    if name in _UTC_NAMES or name.startswith("Etc/"):
        return None, "UTC/GMT or an Etc/ zone, not a place"
    if _OFFSET.fullmatch(name):
        return None, "a UTC offset, not a place (offsets change with DST)"
    if " " in name:
        return None, "a Windows or display time zone name, not an IANA name"
    if "/" not in name:
        if name not in _COUNTRY_ALIASES and _ABBREVIATION.fullmatch(name):
            return None, "an abbreviation or POSIX zone name, not a place"
        if name in _valid_zones():
            return None, "a single-word alias, not an Area/Location name"
    if name not in _valid_zones():
        right = _by_lower().get(name.lower())
        if right is not None and right != name:
            return None, f"not in the time zone database (wrong case: {right}?)"
        close = difflib.get_close_matches(name, _geographic_names(), n=1, cutoff=0.85)
        if close:
            return None, f"not in the time zone database (misspelt {close[0]}?)"
        return None, "not in the time zone database"
    area = _area(name)
    if area not in GEOGRAPHIC_AREAS and area not in LEGACY_FOLDERS:
        return None, "not a geographic Area/Location name"
    target = canonical_zone(name)
    if _area(target) not in GEOGRAPHIC_AREAS:
        return None, f"links to {target}, not a geographic zone"
    return target, None


def geographic_zone(raw: str | None) -> str | None:
    """The canonical geographic IANA zone named by ``raw``, or None (see :func:`check_zone`)."""
    return check_zone(raw)[0]


def _valid_set(zones: Iterable[str]) -> tuple[str, ...]:
    """Canonical, geographic, sorted, unique; anything else dropped."""
    return tuple(sorted({z for z in map(geographic_zone, zones) if z is not None}))


@functools.lru_cache(maxsize=65536)
def phone_zones(raw: tuple[str, ...], calling_code: int | None = None) -> tuple[str, ...]:
    """The geographic zones among phonenumbers' answer for a number.

    'Etc/Unknown' is no signal. Any other answer is the signal, however wide: when
    phonenumbers only knows the calling code (every +1 zone from Adak to Bermuda for an
    American Samoa mobile), the candidates are all of them and the message goes only inside
    their common window, usually none (``no_common_window``): fail closed, never replaced by
    the country's zones. ``calling_code`` is kept for callers; it does not change the answer.
    """
    del calling_code
    return _valid_set(raw)


# --- postal codes -------------------------------------------------------------------------

_US_COUNTRIES = frozenset({"US", "PR", "GU", "VI", "AS", "MP"})
_US_ZIP = re.compile(r"(\d{5})(?:-?\d{4})?")
_US_ZIP_LOST_ZERO = re.compile(r"(\d{4})(?:-\d{4})?")


@functools.cache
def _zip_table() -> dict[str, tuple[str, ...]]:
    """5-digit ZIP -> zones from the offline ``zipcodes`` data (empty / junk zones dropped)."""
    import zipcodes  # imported lazily: only runs with US postal codes pay for the table

    table: dict[str, tuple[str, ...]] = {}
    # The package gives Pacific/Chuuk to every Micronesian ZIP (969 41-44), but Pohnpei and
    # Kosrae are on +11: use the three FM zones of zone.tab for those ZIPs.
    fm = _valid_set(country_zones("FM"))
    for entry in zipcodes.list_all():
        if entry.get("state") == "FM":
            table[entry["zip_code"]] = fm
            continue
        zones = _valid_set([entry.get("timezone") or ""])
        if zones:
            table[entry["zip_code"]] = zones
    return table


@functools.cache
def _zip_prefix_table() -> dict[str, tuple[str, ...]]:
    """3-digit ZIP prefix (the USPS sectional centre) -> every zone of its known ZIPs.

    For a well-formed ZIP the registry does not list (new, retired or PO-box-only codes), the
    prefix is still a real location: all zones of that area are candidates, so the message goes
    only inside their common window, rather than falling through to the phone.
    """
    zones: dict[str, set[str]] = {}
    for zip5, found in _zip_table().items():
        zones.setdefault(zip5[:3], set()).update(found)
    return {prefix: tuple(sorted(z)) for prefix, z in zones.items()}


def _us_zones(code: str) -> tuple[str, ...] | None:
    match = _US_ZIP.fullmatch(code)
    if match is None:
        match = _US_ZIP_LOST_ZERO.fullmatch(code)
        if match is None:
            return None
        zip5 = "0" + match.group(1)
    else:
        zip5 = match.group(1)
    found = _zip_table().get(zip5)
    return found if found is not None else _zip_prefix_table().get(zip5[:3])


_CA_POSTAL = re.compile(r"([ABCEGHJKLMNPRSTVXY]\d[ABCEGHJ-NPRSTV-Z]) ?\d[ABCEGHJ-NPRSTV-Z]\d")
# First letter -> the province's (main) zone. Canada Post: A NL, B NS, C PE, E NB, G/H/J QC,
# K/L/M/N/P ON, R MB, S SK, T AB, V BC, X NT/NU, Y YT.
_CA_PROVINCE = {
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
    "X": "America/Edmonton",
    "Y": "America/Whitehorse",
}
# FSA (first three characters) -> zones, for the minority zones of split provinces. Sources:
# the FSA lists of Canada Post (which FSA serves which community) and the zone comments of
# tzdata's zone.tab / northamerica file (which community keeps which clock). Where an FSA
# mixes clocks, or we are not sure it does not, every zone is listed (the window is then the
# intersection), never a guess.
_CA_FSA: dict[str, tuple[str, ...]] = {
    # BC. zone.tab: America/Dawson_Creek "MST - BC (Dawson Cr, Ft St John)",
    # America/Fort_Nelson "MST - BC (Ft Nelson)", America/Edmonton "Mountain - AB; BC (E)".
    "V1G": ("America/Dawson_Creek",),  # Canada Post: Dawson Creek
    "V1J": ("America/Dawson_Creek",),  # Canada Post: Fort St. John
    # V0C: rural north-eastern BC (Fort Nelson, Chetwynd, Hudson's Hope, Tumbler Ridge, on
    # MST all year) but also Dease Lake and the Stikine (Pacific time): all three.
    "V0C": ("America/Dawson_Creek", "America/Fort_Nelson", "America/Vancouver"),
    "V1A": ("America/Edmonton",),  # Canada Post: Kimberley (East Kootenay, Mountain time)
    "V1C": ("America/Edmonton",),  # Canada Post: Cranbrook (East Kootenay, Mountain time)
    # V0A / V0B: rural Kootenays, mixing Mountain (Golden, Invermere, Fernie), MST all year
    # (Creston: America/Creston, a link to America/Phoenix) and Pacific (West Kootenay).
    "V0A": ("America/Edmonton", "America/Vancouver"),
    "V0B": ("America/Creston", "America/Edmonton", "America/Vancouver"),
    # SK. tzdata northamerica: Lloydminster keeps Alberta's clock. Canada Post: S9V Lloydminster.
    "S9V": ("America/Edmonton",),
    # ON. zone.tab: America/Winnipeg "Central - ON (west); Manitoba", America/Atikokan (now a
    # link to America/Panama) "EST - ON (Atikokan); NU (Coral H)". Canada Post: P9N Kenora,
    # P8N Dryden, P8T Sioux Lookout, P9A Fort Frances, P0V / P0W / P0X rural north-western
    # Ontario (Red Lake, Pickle Lake; Rainy River, Emo; Keewatin, Sioux Narrows).
    "P9N": ("America/Winnipeg",),
    "P8N": ("America/Winnipeg",),
    "P8T": ("America/Winnipeg",),
    "P9A": ("America/Winnipeg",),
    "P0V": ("America/Winnipeg",),
    "P0W": ("America/Winnipeg",),
    "P0X": ("America/Winnipeg",),
    # P0T: Atikokan (EST all year) shares its FSA with Nipigon, Marathon, Geraldton (Eastern).
    "P0T": ("America/Atikokan", "America/Toronto"),
    # QC. zone.tab: America/Halifax "Atlantic - NS (most areas); PE" and tzdata northamerica:
    # the Magdalen Islands keep Atlantic time (Canada Post: G4T Îles-de-la-Madeleine).
    "G4T": ("America/Halifax",),
    # G0G: rural Côte-Nord: the Lower North Shore east of Natashquan and Blanc-Sablon keep AST
    # all year (America/Blanc-Sablon, a link to America/Puerto_Rico), the rest is Eastern.
    "G0G": ("America/Blanc-Sablon", "America/Toronto"),
    # NL. zone.tab: America/Goose_Bay "Atlantic - Labrador (most areas)"; St_Johns
    # "Newfoundland; Labrador (southeast)". Canada Post: A0P Happy Valley-Goose Bay and the
    # north coast (Nain, Hopedale, Rigolet), A0R Churchill Falls / western Labrador, A2V
    # Labrador City / Wabush. (The south-east coast, on Newfoundland time, is A0K.)
    "A0P": ("America/Goose_Bay",),
    "A0R": ("America/Goose_Bay",),
    "A2V": ("America/Goose_Bay",),
    # NU / NT. zone.tab: America/Iqaluit "Eastern - NU (most areas)", America/Resolute
    # "Central - NU (Resolute)", America/Rankin_Inlet "Central - NU (central)",
    # America/Cambridge_Bay "Mountain - NU (west)", America/Atikokan "... NU (Coral H)",
    # America/Edmonton (Yellowknife is a link to it) "Mountain - ... NT (E)".
    # Canada Post: X0A Qikiqtaaluk / Baffin (incl. Resolute), X0B Kitikmeot, X0C Kivalliq
    # (incl. Coral Harbour), X0E / X0G / X1A Northwest Territories (X1A Yellowknife).
    "X0A": ("America/Iqaluit", "America/Resolute"),
    "X0B": ("America/Cambridge_Bay",),
    "X0C": ("America/Atikokan", "America/Rankin_Inlet"),
    "X0E": ("America/Edmonton",),
    "X0G": ("America/Edmonton",),
    "X1A": ("America/Edmonton",),
}


def _ca_zones(code: str) -> tuple[str, ...] | None:
    match = _CA_POSTAL.fullmatch(code)
    if match is None:
        return None
    fsa = match.group(1)
    return _valid_set(_CA_FSA.get(fsa, (_CA_PROVINCE[fsa[0]],))) or None


_GB_POSTAL = re.compile(r"(?:[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}|GIR ?0AA)")
_IE_EIRCODE = re.compile(r"(?:[AC-FHKNPRTV-Y]\d{2}|D6W) ?[0-9AC-FHKNPRTV-Y]{4}")
_IN_PIN = re.compile(r"[1-9]\d{2} ?\d{3}")
_NP_POSTAL = re.compile(r"\d{5}")
_FOUR_DIGITS = re.compile(r"\d{3,4}")  # AU / NZ: a 3-digit value lost its leading zero

# Australia: special postcodes first, then by the first digits (Australia Post ranges).
_AU_SPECIAL: dict[str, tuple[str, ...]] = {
    "2898": ("Australia/Lord_Howe",),  # Lord Howe Island (+10:30 / +11)
    "2880": ("Australia/Broken_Hill",),  # Broken Hill NSW keeps South Australian time
    "2899": ("Pacific/Norfolk",),  # Norfolk Island
    "6798": ("Indian/Christmas",),  # Christmas Island
    "6799": ("Indian/Cocos",),  # Cocos (Keeling) Islands
    # 6443: Eucla, Madura, Mundrabilla, Cocklebiddy keep the unofficial +08:45 clock
    # (Australia/Eucla) but the postcode also serves Balladonia and Fraser Range on Perth time.
    "6443": ("Australia/Eucla", "Australia/Perth"),
}
_AU_BY_DIGIT = {
    "1": "Australia/Sydney",  # NSW (PO boxes / large users)
    "2": "Australia/Sydney",  # NSW and ACT (26xx, 29xx)
    "3": "Australia/Melbourne",  # VIC
    "4": "Australia/Brisbane",  # QLD (no DST)
    "5": "Australia/Adelaide",  # SA
    "6": "Australia/Perth",  # WA
    "7": "Australia/Hobart",  # TAS
    "8": "Australia/Melbourne",  # VIC (PO boxes / large users)
    "9": "Australia/Brisbane",  # QLD (PO boxes / large users)
}


def _au_zones(code: str) -> tuple[str, ...] | None:
    if not _FOUR_DIGITS.fullmatch(code):
        return None
    code = code.zfill(4)
    if code in _AU_SPECIAL:
        return _AU_SPECIAL[code]
    if code[0] == "0":
        if code[1] in "89":
            return ("Australia/Darwin",)  # NT: 08xx, 09xx
        if code[1] == "2":
            return ("Australia/Sydney",)  # ACT: 02xx
        return None
    return (_AU_BY_DIGIT[code[0]],)


def _nz_zones(code: str) -> tuple[str, ...] | None:
    if not _FOUR_DIGITS.fullmatch(code):
        return None
    return ("Pacific/Chatham",) if code.zfill(4) == "8942" else ("Pacific/Auckland",)


_Lookup = Callable[[str], tuple[str, ...] | None]


def _single(pattern: re.Pattern[str], zone: str, sample: str) -> _Lookup:
    """``zone`` when ``pattern`` matches the whole code (``sample`` is a code that matches)."""

    def zones(code: str) -> tuple[str, ...] | None:
        return (zone,) if pattern.fullmatch(code) else None

    zones.pattern = pattern  # type: ignore[attr-defined]
    zones.sample = sample  # type: ignore[attr-defined]
    return zones


_POSTAL: dict[str, _Lookup] = {
    "CA": _ca_zones,
    "GB": _single(_GB_POSTAL, "Europe/London", "SW1A 1AA"),
    "IE": _single(_IE_EIRCODE, "Europe/Dublin", "D02 X285"),
    "IN": _single(_IN_PIN, "Asia/Kolkata", "110001"),
    "NP": _single(_NP_POSTAL, "Asia/Kathmandu", "44600"),
    "NZ": _nz_zones,
    "AU": _au_zones,
} | dict.fromkeys(_US_COUNTRIES, _us_zones)
POSTAL_COUNTRIES = frozenset(_POSTAL)
"""Countries whose postal codes are a zone signal (any other country's code is none)."""


@functools.lru_cache(maxsize=65536)
def postal_zones(country: str | None, postal_code: str | None) -> tuple[str, ...] | None:
    """Candidate zones for a postal code of ``country``, or None when it gives no signal.

    None for a country without a table, a code that does not match the country's format, or a
    code the table does not know. Every zone returned is geographic and canonical.
    """
    if not country or postal_code is None:
        return None
    lookup = _POSTAL.get(country.strip().upper())
    if lookup is None:
        return None
    code = postal_code.strip().upper()
    if not code or len(code) > 16:
        return None
    zones = lookup(code)
    return (_valid_set(zones) or None) if zones else None


# --- postal codes of a whole column ---------------------------------------------------------

_POSTAL_SIMPLE = r"^[A-Za-z0-9 -]*$"
"""Codes the expressions below read: ASCII letters, digits, spaces and hyphens only. For them
``str.strip`` / ``str.upper`` and polars' ``strip_chars(" ")`` / ``to_uppercase`` agree, and
so do Python's and polars' ``\\d`` (Python's also matches non-ASCII digits); any other code
goes through :func:`postal_zones` itself."""
_COUNTRY_CODE = r"^[A-Z]{2}$"


def _joined(zones: tuple[str, ...] | None) -> str:
    return "|".join(zones or ())


_FRAMES_LOCK = threading.Lock()
_BACKGROUND: list[threading.Thread] = []


def _postal_frames() -> dict[str, pl.DataFrame]:
    """:func:`_build_postal_frames`, built once per process even when asked from two threads
    (:func:`prepare_postal_frames` builds them in the background)."""
    with _FRAMES_LOCK:
        return _build_postal_frames()


def prepare_postal_frames() -> threading.Thread:
    """Start building the postal lookup frames in a background thread (the ``zipcodes`` table
    takes most of a second to load): polars releases the GIL while it computes, so a caller
    with polars work to do before it needs the frames gets them for less. Once built, a
    further call's thread returns at once."""
    thread = threading.Thread(target=_postal_frames, name="postal-frames", daemon=True)
    thread.start()
    _BACKGROUND.append(thread)
    return thread


def wait_for_background() -> None:
    """Wait for the background threads this module started (:func:`prepare_postal_frames`):
    a caller about to fork (the phone parser's process pool) forks no thread holding a lock
    (the frames lock, an import, polars' allocator) into its children."""
    while _BACKGROUND:
        _BACKGROUND.pop().join()


@functools.cache
def _build_postal_frames() -> dict[str, pl.DataFrame]:
    """Lookup frames equal to the postal tables (built once per process): the answer of
    :func:`postal_zones` per 5-digit ZIP and per 3-digit ZIP area, per Canadian FSA and per
    3- or 4-digit AU / NZ code, as '|'-joined text ('' = no signal)."""
    post = functools.cache(lambda zones: _joined(_valid_set(zones) or None if zones else None))
    zips = _zip_table()
    prefixes = _zip_prefix_table()
    letters, third = "ABCEGHJKLMNPRSTVXY", "ABCEGHJKLMNPRSTVWXYZ"
    fsas = [f"{a}{d}{c}" for a in letters for d in "0123456789" for c in third]
    digits = [f"{n:03d}" for n in range(1000)] + [f"{n:04d}" for n in range(10000)]
    return {
        "zip": pl.DataFrame(
            {"_zip5": list(zips), "_z1": [post(z) for z in zips.values()]},
            schema={"_zip5": pl.String(), "_z1": pl.String()},
        ),
        "prefix": pl.DataFrame(
            {"_zip3": list(prefixes), "_z2": [post(z) for z in prefixes.values()]},
            schema={"_zip3": pl.String(), "_z2": pl.String()},
        ),
        "ca": pl.DataFrame(
            {"_fsa": fsas, "_z3": [_joined(postal_zones("CA", f + "1A1")) for f in fsas]},
            schema={"_fsa": pl.String(), "_z3": pl.String()},
        ),
        "aunz": pl.DataFrame(
            {
                "_c": ["AU"] * len(digits) + ["NZ"] * len(digits),
                "_code": digits * 2,
                "_z4": [_joined(postal_zones(c, d)) for c in ("AU", "NZ") for d in digits],
            },
            schema={"_c": pl.String(), "_code": pl.String(), "_z4": pl.String()},
        ),
    }


def postal_zones_column(pairs: pl.DataFrame, country: str, code: str) -> pl.Series:
    """:func:`postal_zones` of every row of ``pairs`` (columns ``country``, ``code``), as
    '|'-joined text ('' where the code gives no signal), in the rows' order.

    Read by polars expressions and the lookup frames of :func:`_postal_frames`; codes outside
    :data:`_POSTAL_SIMPLE` (or a country not already trimmed upper case) are answered by
    :func:`postal_zones` itself, once per distinct pair. ``tests/unit/test_zones.py`` checks
    the two agree on generated codes.
    """
    frames = _postal_frames()
    c, raw = pl.col(country), pl.col(code)
    simple = (
        raw.str.contains(_POSTAL_SIMPLE)
        & c.str.contains(_COUNTRY_CODE)
        & c.is_in(sorted(POSTAL_COUNTRIES))
    ).fill_null(False)
    work = pairs.select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("_r"),
        c.alias("_country"),
        raw.alias("_raw"),
        simple.alias("_simple"),
        raw.str.strip_chars(" ").str.to_uppercase().alias("_code"),
    )
    k, u = pl.col("_code"), pl.col("_country")
    usable = (k != "") & (k.str.len_chars() <= 16)
    us_zip = pl.coalesce(
        k.str.extract(r"^([0-9]{5})(?:-?[0-9]{4})?$", 1),
        pl.lit("0") + k.str.extract(r"^([0-9]{4})(?:-[0-9]{4})?$", 1),
    )
    ca_fsa = k.str.extract("^(?:" + _CA_POSTAL.pattern + ")$", 1)
    keyed = work.filter("_simple").with_columns(
        pl.when(usable & u.is_in(sorted(_US_COUNTRIES))).then(us_zip).alias("_zip5"),
        pl.when(usable & (u == "CA")).then(ca_fsa).alias("_fsa"),
        pl.when(usable & u.is_in(["AU", "NZ"])).then(u).alias("_c"),
    )
    keyed = keyed.with_columns(pl.col("_zip5").str.slice(0, 3).alias("_zip3"))
    single = pl.lit("")
    for name, lookup in _POSTAL.items():
        pattern = getattr(lookup, "pattern", None)
        if pattern is not None:  # one zone when the pattern matches
            answer = _joined(postal_zones(name, lookup.sample))  # type: ignore[attr-defined]
            hit = usable & (u == name) & k.str.contains("^(?:" + pattern.pattern + ")$")
            single = pl.when(hit).then(pl.lit(answer)).otherwise(single)
    found = (
        keyed.join(frames["zip"], on="_zip5", how="left")
        .join(frames["prefix"], on="_zip3", how="left")
        .join(frames["ca"], on="_fsa", how="left")
        .join(frames["aunz"], on=["_c", "_code"], how="left")
        .select(
            "_r",
            pl.coalesce(
                pl.when(pl.col("_zip5").is_not_null()).then(pl.coalesce("_z1", "_z2", pl.lit(""))),
                "_z3",
                "_z4",
                single,
            ).alias("_zones"),
        )
    )
    rest = work.filter(~pl.col("_simple")).select("_r", "_country", "_raw")
    if rest.height:
        distinct = rest.select("_country", "_raw").unique()
        answers = [_joined(postal_zones(a, b)) for a, b in distinct.iter_rows()]
        distinct = distinct.with_columns(pl.Series("_zones", answers, dtype=pl.String))
        rest = rest.join(distinct, on=["_country", "_raw"], how="left", nulls_equal=True)
        found = pl.concat([found, rest.select("_r", "_zones")])
    return found.sort("_r")["_zones"]


@functools.lru_cache(maxsize=65536)
def resolve_zones(
    preferred: str | None,
    country: str | None,
    postal_code: str | None,
    by_phone: tuple[str, ...],
    calling_code: int | None = None,
) -> tuple[tuple[str, ...], str]:
    """(sorted candidate zones, zone_source) from the signals, first that answers wins.

    ``preferred`` is the raw preferred_timezone (rejected names are no signal), ``by_phone``
    phonenumbers' raw answer for the customer's number, ``calling_code`` the number's country
    calling code (see :func:`phone_zones`).
    """
    zone = geographic_zone(preferred)
    if zone is not None:
        return (zone,), "preferred"
    postal = postal_zones(country, postal_code)
    if postal:
        return postal, "postal_code"
    phone = phone_zones(by_phone, calling_code)
    if phone:
        return phone, "phone"
    by_country = _valid_set(country_zones(country)) if country else ()
    if by_country:
        return by_country, "country"
    return (), "unknown"
