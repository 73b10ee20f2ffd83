"""Deterministic, seeded sample data for the payment-reminder pipeline's canonical inputs.

Contract
--------
``generate(n_customers, seed=..., as_of=...)`` returns the four canonical input tables of
``DESIGN.md`` ("Canonical inputs") as polars DataFrames whose columns are all strings (Utf8),
exactly as a messy CSV export would hold them; missing values are nulls.

* The same ``(n_customers, seed, as_of)`` gives identical frames and byte-identical files from
  :meth:`SampleData.write` (with the locked versions of polars and faker). Another seed gives
  other data.
* ``n_customers`` counts distinct customers. ``customers`` has a few more rows: older versions
  of some customers, appended at the end as an incremental export would append them. Duplicate
  invoices are appended the same way. Every timestamp is ISO-8601 UTC with a ``Z`` and falls before
  ``as_of`` at 00:00 UTC; due dates spread around ``as_of``.
* Cost grows linearly and no Python work is done per row. Faker runs once per process and
  locale to build small fixed name pools, which are then sampled as columns. 1,000,000 customers
  take 9-13 s and about 1.4 GB peak RSS on two cores.
* Phone numbers use fictional or reserved ranges where a country has ranges that
  ``phonenumbers`` accepts as valid: NANP ``NPA-555-XXXX``, Ofcom drama ranges for UK
  landlines, ACMA ``5550``/``7010`` ranges and ``0491 57x`` for Australia, ARCEP ``01 99 00``
  for France. ``phonenumbers`` rejects the Ofcom mobile drama range, so UK mobiles, like the
  numbers of the other countries, are random subscriber numbers in valid blocks. Every clean
  number is valid for its country.
  Within a block, numbers are unique until the block runs out. E-mail domains are only
  example.com, example.org and example.net.

Mess, as a share of rows. A share of at least 1/n is rounded up to one row once a table has
100 rows, so small demos still show every kind:

* customers: unusable phones about 8% (null 2.5%, blank 0.5%, garbage 1.5%, too short 1.5%,
  vanity letters 0.5%, a valid number of another country 1%). Households share a number (2%).
  Usable numbers come in many layouts (E.164, international, national, dashes, dots, compact,
  extension, foreign exit code ``001-``/``00``). E-mails: invalid 4%, null 3%, mixed case 8%,
  padded with spaces 5%. ``preferred_timezone``: valid 60% (3 of those points are legacy
  aliases such as ``US/Arizona``), null 35%, invalid 5%. Names: 15% only ``full_name``, 15% only
  first and last name, 2% shouting or padded. Duplicate ``customer_id`` with an older
  ``updated_at``: 0.5%. Missing ``customer_id``: 0.3%. Country ``XX``: 0.2%. Lower case or
  padded country: 0.5%. Postal codes: 5.5% messy. Locales: 8% null, 10% written ``en-US``.
* invoices: 1-3 per customer (mean 1.5). Status: open 60%, partially_paid 15%, paid 15%,
  void 5%, disputed 5%. Due dates: 8% each exactly at ``as_of`` +7, +1, -3 and -7 days, the
  rest uniform over -90..+45 days. Bad rows about 1%: negative amount, ``12,50``, ``abc``,
  currency ``ZZZ``, due date ``31/12/2026`` or null, status ``weird``, unknown customer, and a
  duplicate ``invoice_id`` (an older version of the row).
* consent_events: 10% of customers have no sms consent at all. 6% opt out later (sms STOP via
  ``inbound_keyword``, e-mail, ``all``, crm). 0.5% have an opt_in and an opt_out at the same
  ``occurred_at``. 1% have a START written before the earlier STOP. 0.5% have an ``all``
  opt_in.
* contact_history: 4% of customers contacted within 24 h before ``as_of``, 6% 24-72 h before,
  30% only 4-120 days before.
"""

from __future__ import annotations

import math
import random
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Literal

import polars as pl
import pyarrow as pa
from faker import Faker

from tasks.settings import CANONICAL_COLUMNS

__all__ = ["SampleData", "generate"]

_DAY = 86_400
_MIN_ROWS_FOR_ONE = 100
_POOL_SEED = 20_261_123
_POOL_SIZE = 150
_TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

_CUSTOMER_COLUMNS = CANONICAL_COLUMNS["customers"]
_INVOICE_COLUMNS = CANONICAL_COLUMNS["invoices"]
_CONSENT_COLUMNS = CANONICAL_COLUMNS["consent_events"]
# invoice_id is optional in contact_history; the sample history does not name invoices.
_CONTACT_COLUMNS = tuple(c for c in CANONICAL_COLUMNS["contact_history"] if c != "invoice_id")


@dataclass(frozen=True)
class SampleData:
    """The four canonical input tables, every column a string."""

    customers: pl.DataFrame
    invoices: pl.DataFrame
    consent_events: pl.DataFrame
    contact_history: pl.DataFrame

    def write(self, folder: Path, fmt: Literal["csv", "parquet"] = "csv") -> dict[str, Path]:
        """Write one file per table (``customers.csv`` ...) into ``folder``; table -> path."""
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"unsupported format {fmt!r}; use 'csv' or 'parquet'")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        for field in fields(self):
            name, frame = field.name, getattr(self, field.name)
            path = folder / f"{name}.{fmt}"
            if fmt == "csv":
                frame.write_csv(path)
            else:
                frame.write_parquet(path)
            paths[name] = path
        return paths


@dataclass(frozen=True)
class _Block:
    """A range of phone numbers: +cc area sub_fixed<n_rand random digits>."""

    cc: str
    trunk: str
    area: str | None
    sub_fixed: str
    n_rand: int
    groups: tuple[int, ...]
    weight: float = 1.0


@dataclass(frozen=True)
class _Region:
    code: str
    country: str
    zone: str
    weight: float
    alias: str | None
    foreign: str
    locales: tuple[tuple[str, float], ...]
    names: tuple[tuple[str, float], ...]
    phones: tuple[_Block, ...]
    postal: tuple[str, ...]
    postal_tail: str


def _csv(text: str) -> tuple[str, ...]:
    return tuple(text.split(","))


def _nanp(*areas: int) -> tuple[_Block, ...]:
    return tuple(_Block("1", "", str(a), "555", 4, (3, 4)) for a in areas)


_US_NAMES = (
    ("en_US", 62),
    ("es_MX", 12),
    ("accented", 4),
    ("zh_CN", 5),
    ("ko_KR", 3),
    ("ru_RU", 4),
    ("en_IN", 5),
    ("hi_IN", 2),
    ("ja_JP", 3),
)
_US_LOCALES = (("en_US", 88), ("es_US", 12))
_CA_NAMES = (
    ("en_US", 55),
    ("fr_CA", 10),
    ("zh_CN", 10),
    ("en_IN", 8),
    ("hi_IN", 3),
    ("ko_KR", 4),
    ("uk_UA", 5),
    ("accented", 5),
)
_GB_NAMES = (
    ("en_GB", 75),
    ("en_IN", 8),
    ("hi_IN", 2),
    ("accented", 5),
    ("ru_RU", 3),
    ("zh_CN", 3),
    ("fr_FR", 2),
    ("de_DE", 2),
)
_GB_PHONES = (
    _Block("44", "0", "7400", "", 6, (3, 3), 40),
    _Block("44", "0", "7123", "", 6, (3, 3), 30),
    _Block("44", "0", "20", "79460", 3, (4, 4), 6),
    _Block("44", "0", "161", "4960", 3, (3, 4), 4),
    _Block("44", "0", "113", "4960", 3, (3, 4), 3),
    _Block("44", "0", "121", "4960", 3, (3, 4), 4),
    _Block("44", "0", "141", "4960", 3, (3, 4), 3),
    _Block("44", "0", "131", "4960", 3, (3, 4), 2),
    _Block("44", "0", "117", "4960", 3, (3, 4), 2),
    _Block("44", "0", "151", "4960", 3, (3, 4), 2),
    _Block("44", "0", "191", "4980", 3, (3, 4), 2),
    _Block("44", "0", "29", "20180", 3, (4, 4), 1),
    _Block("44", "0", "28", "90180", 3, (4, 4), 1),
)
_GB_POSTAL = _csv("SW1A,EC1A,N1,E2,SE1,W1D,M1,M4,LS1,B1,G1,EH1,BS1,L1,NE1,CF10,BT1")
_AU_NAMES = (
    ("en_AU", 70),
    ("zh_CN", 8),
    ("en_IN", 5),
    ("accented", 5),
    ("ja_JP", 3),
    ("ko_KR", 3),
    ("maori", 2),
    ("ru_RU", 2),
    ("hi_IN", 2),
)


def _au_phones(state_digit: str) -> tuple[_Block, ...]:
    return (
        _Block("61", "0", "491", "57", 4, (3, 3), 70),
        _Block("61", "0", state_digit, "5550", 4, (4, 4), 15),
        _Block("61", "0", state_digit, "7010", 4, (4, 4), 15),
    )


_NZ_NAMES = (("en_NZ", 60), ("maori", 25), ("zh_CN", 5), ("accented", 5), ("en_IN", 5))
_NZ_MOBILES = (
    _Block("64", "0", "21", "", 7, (3, 4), 40),
    _Block("64", "0", "22", "", 7, (3, 4), 20),
    _Block("64", "0", "27", "", 7, (3, 4), 25),
)

# fmt: off
_REGIONS: tuple[_Region, ...] = (
    _Region(
        "US-NY", "US", "America/New_York", 14, alias="US/Eastern", foreign="GB-LON",
        locales=_US_LOCALES, names=_US_NAMES,
        phones=_nanp(212, 718, 917, 646, 347, 929, 516, 631, 914, 201, 973, 617, 305, 404, 215,
                     704),
        postal=("100", "101", "104", "112", "113", "117", "021", "073", "191", "303", "331", "282"),
        postal_tail="##",
    ),
    _Region(
        "US-CHI", "US", "America/Chicago", 9, alias="US/Central", foreign="GB-LON",
        locales=_US_LOCALES, names=_US_NAMES,
        phones=_nanp(312, 773, 872, 847, 630, 708, 214, 713, 512, 612, 314, 615),
        postal=("606", "607", "604", "752", "770", "787", "554", "631", "372"),
        postal_tail="##",
    ),
    _Region(
        "US-DEN", "US", "America/Denver", 3, alias="US/Mountain", foreign="MX-CDMX",
        locales=_US_LOCALES, names=_US_NAMES,
        phones=_nanp(303, 720, 970, 801, 505, 406),
        postal=("802", "803", "805", "841", "871", "591"),
        postal_tail="##",
    ),
    _Region(
        "US-PHX", "US", "America/Phoenix", 2.5, alias="US/Arizona", foreign="MX-CDMX",
        locales=_US_LOCALES, names=_US_NAMES,
        phones=_nanp(602, 480, 623, 520, 928),
        postal=("850", "852", "853", "857", "863"),
        postal_tail="##",
    ),
    _Region(
        "US-LA", "US", "America/Los_Angeles", 8, alias="US/Pacific", foreign="GB-LON",
        locales=_US_LOCALES, names=_US_NAMES,
        phones=_nanp(213, 310, 323, 818, 626, 415, 408, 206, 503, 702),
        postal=("900", "902", "913", "941", "951", "981", "972", "891"),
        postal_tail="##",
    ),
    _Region(
        "US-HNL", "US", "Pacific/Honolulu", 1.5, alias="US/Hawaii", foreign="AU-SYD",
        locales=_US_LOCALES, names=_US_NAMES,
        phones=_nanp(808),
        postal=("967", "968"),
        postal_tail="##",
    ),
    _Region(
        "CA-TOR", "CA", "America/Toronto", 4.5, alias="Canada/Eastern", foreign="US-NY",
        locales=(("en_CA", 92), ("fr_CA", 8)), names=_CA_NAMES,
        phones=_nanp(416, 647, 437, 905, 289, 613),
        postal=("M5V", "M4C", "M6G", "M2N", "L5B", "K1P", "L4C"),
        postal_tail=" #?#",
    ),
    _Region(
        "CA-QC", "CA", "America/Toronto", 3, alias="Canada/Eastern", foreign="FR-PAR",
        locales=(("fr_CA", 80), ("en_CA", 20)),
        names=(("fr_CA", 80), ("en_US", 10), ("accented", 10)),
        phones=_nanp(514, 438, 450, 418, 581),
        postal=("H2X", "H3B", "H2T", "G1R", "J4K", "J7Y"),
        postal_tail=" #?#",
    ),
    _Region(
        "CA-VAN", "CA", "America/Vancouver", 3, alias="Canada/Pacific", foreign="US-LA",
        locales=(("en_CA", 92), ("fr_CA", 8)), names=_CA_NAMES,
        phones=_nanp(604, 778, 236, 250),
        postal=("V6B", "V5K", "V6Z", "V8W", "V3H"),
        postal_tail=" #?#",
    ),
    _Region(
        "CA-NL", "CA", "America/St_Johns", 1.5, alias="Canada/Newfoundland", foreign="GB-LON",
        locales=(("en_CA", 100),),
        names=(("en_US", 80), ("en_GB", 10), ("fr_CA", 5), ("accented", 5)),
        phones=_nanp(709),
        postal=("A1C", "A1B", "A1E", "A0K", "A2H"),
        postal_tail=" #?#",
    ),
    _Region(
        "GB-LON", "GB", "Europe/London", 9, alias="GB", foreign="US-NY",
        locales=(("en_GB", 100),), names=_GB_NAMES,
        phones=_GB_PHONES, postal=_GB_POSTAL, postal_tail=" #??",
    ),
    _Region(
        "IN-DEL", "IN", "Asia/Kolkata", 4, alias="Asia/Calcutta", foreign="NP-KTM",
        locales=(("en_IN", 60), ("hi_IN", 40)), names=(("hi_IN", 55), ("en_IN", 45)),
        phones=(
            _Block("91", "0", None, "98", 8, (5, 5), 35),
            _Block("91", "0", None, "97", 8, (5, 5), 25),
            _Block("91", "0", None, "70", 8, (5, 5), 25),
            _Block("91", "0", "11", "2", 7, (4, 4), 15),
        ),
        postal=("110",),
        postal_tail="###",
    ),
    _Region(
        "IN-MUM", "IN", "Asia/Kolkata", 3, alias="Asia/Calcutta", foreign="GB-LON",
        locales=(("en_IN", 70), ("hi_IN", 30)), names=(("hi_IN", 45), ("en_IN", 55)),
        phones=(
            _Block("91", "0", None, "98", 8, (5, 5), 40),
            _Block("91", "0", None, "90", 8, (5, 5), 35),
            _Block("91", "0", None, "70", 8, (5, 5), 25),
        ),
        postal=("400",),
        postal_tail="###",
    ),
    _Region(
        "NP-KTM", "NP", "Asia/Kathmandu", 4, alias="Asia/Katmandu", foreign="IN-DEL",
        locales=(("ne_NP", 75), ("en", 25)),
        names=(("ne_NP", 75), ("hi_IN", 15), ("en_IN", 10)),
        phones=(
            _Block("977", "", None, "984", 7, (3, 7), 45),
            _Block("977", "", None, "985", 7, (3, 7), 25),
            _Block("977", "", None, "980", 7, (3, 7), 15),
            _Block("977", "0", "1", "4", 6, (3, 4), 15),
        ),
        postal=("44600", "44601", "44602", "44700", "44800", "33700"),
        postal_tail="",
    ),
    _Region(
        "AU-SYD", "AU", "Australia/Sydney", 5, alias="Australia/NSW", foreign="NZ-AKL",
        locales=(("en_AU", 100),), names=_AU_NAMES,
        phones=_au_phones("2"), postal=("20", "21"), postal_tail="##",
    ),
    _Region(
        "AU-MEL", "AU", "Australia/Melbourne", 2, alias="Australia/Victoria", foreign="NZ-AKL",
        locales=(("en_AU", 100),), names=_AU_NAMES,
        phones=_au_phones("3"), postal=("30", "31"), postal_tail="##",
    ),
    _Region(
        "AU-BNE", "AU", "Australia/Brisbane", 1.5, alias="Australia/Queensland", foreign="NZ-AKL",
        locales=(("en_AU", 100),), names=_AU_NAMES,
        phones=_au_phones("7"), postal=("40", "41"), postal_tail="##",
    ),
    _Region(
        "AU-PER", "AU", "Australia/Perth", 2.5, alias="Australia/West", foreign="GB-LON",
        locales=(("en_AU", 100),), names=_AU_NAMES,
        phones=_au_phones("8"), postal=("60", "61"), postal_tail="##",
    ),
    _Region(
        "AU-LHI", "AU", "Australia/Lord_Howe", 1.5, alias="Australia/LHI", foreign="NZ-AKL",
        locales=(("en_AU", 100),), names=_AU_NAMES,
        phones=_au_phones("2"), postal=("2898",), postal_tail="",
    ),
    _Region(
        "NZ-AKL", "NZ", "Pacific/Auckland", 5, alias="NZ", foreign="AU-SYD",
        locales=(("en_NZ", 85), ("mi_NZ", 15)), names=_NZ_NAMES,
        phones=(*_NZ_MOBILES, _Block("64", "0", "9", "3", 6, (3, 4), 15)),
        postal=("10", "20", "06", "26"),
        postal_tail="##",
    ),
    _Region(
        "NZ-CHA", "NZ", "Pacific/Chatham", 1.5, alias="NZ-CHAT", foreign="AU-SYD",
        locales=(("en_NZ", 80), ("mi_NZ", 20)), names=_NZ_NAMES,
        phones=(*_NZ_MOBILES, _Block("64", "0", "3", "305", 4, (3, 4), 40)),
        postal=("8942",),
        postal_tail="",
    ),
    _Region(
        "DE-BER", "DE", "Europe/Berlin", 3, alias=None, foreign="FR-PAR",
        locales=(("de_DE", 100),),
        names=(("de_DE", 80), ("ru_RU", 5), ("uk_UA", 5), ("accented", 10)),
        phones=(
            _Block("49", "0", "1512", "", 7, (3, 4), 40),
            _Block("49", "0", "170", "", 7, (3, 4), 30),
            _Block("49", "0", "30", "2", 7, (4, 4), 30),
        ),
        postal=("10", "12", "13"),
        postal_tail="###",
    ),
    _Region(
        "FR-PAR", "FR", "Europe/Paris", 3, alias=None, foreign="DE-BER",
        locales=(("fr_FR", 100),), names=(("fr_FR", 85), ("accented", 10), ("ru_RU", 5)),
        phones=(
            _Block("33", "0", "6", "12", 6, (2, 2, 2, 2), 45),
            _Block("33", "0", "7", "5", 7, (2, 2, 2, 2), 25),
            _Block("33", "0", "1", "9900", 4, (2, 2, 2, 2), 30),
        ),
        postal=("7500", "7501"),
        postal_tail="#",
    ),
    _Region(
        "MX-CDMX", "MX", "America/Mexico_City", 3, alias="Mexico/General", foreign="US-LA",
        locales=(("es_MX", 100),), names=(("es_MX", 90), ("accented", 10)),
        phones=(_Block("52", "", "55", "", 8, (4, 4)),),
        postal=("0", "1"),
        postal_tail="####",
    ),
    _Region(
        "MX-CUN", "MX", "America/Cancun", 1, alias=None, foreign="US-NY",
        locales=(("es_MX", 100),), names=(("es_MX", 90), ("accented", 10)),
        phones=(_Block("52", "", "998", "", 7, (3, 4)),),
        postal=("775",),
        postal_tail="##",
    ),
)
# fmt: on
_CURRENCY = {
    "US": "USD",
    "CA": "CAD",
    "GB": "GBP",
    "IN": "INR",
    "NP": "NPR",
    "AU": "AUD",
    "NZ": "NZD",
    "DE": "EUR",
    "FR": "EUR",
    "MX": "MXN",
}
_USD_RATE = {
    "USD": 1.0,
    "CAD": 1.37,
    "GBP": 0.79,
    "INR": 83.5,
    "NPR": 133.6,
    "AUD": 1.52,
    "NZD": 1.66,
    "EUR": 0.92,
    "MXN": 17.1,
}
_WHOLE_UNIT_CURRENCIES = ("INR", "NPR")

_ACCENTED_FIRST = _csv(
    "José,Zoë,Ægir,François,Björn,Łukasz,Siobhán,Chloé,Renée,Søren,Íñigo,Øystein,"
    "Anaïs,Dagný,Þór,Małgorzata,Jürgen,Ángel,Noémie,Ciarán"
)
_ACCENTED_LAST = _csv(
    "Núñez,Müller,Ødegård,Ó Briain,Gómez,Łukaszewicz,Þórsson,Brontë,Dvořák,"
    "Søndergaard,Peña,Çelik,Żółć,Nguyễn,Lefèvre,García Márquez,O'Connor,"
    "van der Berg,Smith-Jones,Ægisdóttir"
)
_MAORI_FIRST = _csv(
    "Tāne,Mere,Wiremu,Hēmi,Āwhina,Rāwiri,Mānia,Kahurangi,Ngaio,Aroha,Tamatea,Hōne,"
    "Marama,Tūī,Kōwhai,Mātiu,Hinewai,Te Ao"
)
_MAORI_LAST = _csv(
    "Ngata,Te Whiti,Pōmare,Parata,Wātene,Tāwhai,Rangihau,Kīngi,Tūrei,Horomona,"
    "Te Rangi,Tāmihana,Whāanga,Mōrehu,Tūhiwai"
)
_KOREAN_ASCII = (
    ("minjun", "kim"),
    ("seoyeon", "lee"),
    ("jiho", "park"),
    ("haeun", "choi"),
    ("dohyun", "jung"),
    ("jiwoo", "kang"),
    ("yejun", "cho"),
    ("suah", "yoon"),
    ("eunwoo", "jang"),
    ("sumin", "lim"),
)
_EASTERN_ORDER = ("zh_CN", "ja_JP", "ko_KR")
_ASCII_COMPANION = {"hi_IN": "en_IN", "ne_NP": "en_IN"}
_FOLD = str.maketrans(
    {"æ": "ae", "Æ": "Ae", "ø": "o", "Ø": "O", "ß": "ss", "ł": "l", "Ł": "L", "þ": "th"}
    | {"Þ": "Th", "đ": "d", "ð": "d", "ʼ": ""}
)
_CYRILLIC_LATIN = (
    "a b v g g d e ye yo zh z i i yi y k l m n o p r s t u f kh ts ch sh shch - y - e yu ya"
)
_CYRILLIC = {
    c: ("" if latin == "-" else latin)
    for c, latin in zip(
        "абвгґдеєёжзиіїйклмнопрстуфхцчшщъыьэюя", _CYRILLIC_LATIN.split(" "), strict=True
    )
}

_VANITY = ("1-800-PAY-BILL", "1-888-555-CASH", "1-877-MY-LOANS", "1-800-FLOWERS", "0800 BILLS")
_GARBAGE = ("n/a", "N/A", "none", "-", "unknown", "0", "000-000-0000", "tbd", "call office", "?")
_BAD_ZONES = ("EST5", "Mars/Olympus", "GMT+3", "Pacific Time", "IST", "+05:45", "UTC+5:30")
_CHANNEL_MESS = ("SMS", "Email", "e-mail", "text", "whatsapp", "phone")


_PHONE_MESS = (
    ("null", 0.025),
    ("blank", 0.005),
    ("garbage", 0.015),
    ("short", 0.015),
    ("vanity", 0.005),
    ("wrong_country", 0.01),
    ("household", 0.02),
)
_PHONE_LAYOUTS = (
    ("e164", 0.22),
    ("intl", 0.22),
    ("dashes", 0.08),
    ("dots", 0.05),
    ("compact", 0.06),
    ("ext", 0.03),
    ("idd", 0.02),
)
_EMAIL_MESS = (
    ("null", 0.03),
    ("invalid", 0.04),
    ("mixed", 0.07),
    ("padded", 0.04),
    ("mixed_padded", 0.01),
)
_BAD_EMAIL_KINDS = ("no_domain", "no_at", "tiny", "double_at", "space", "no_tld")
_INVOICE_MESS = (
    ("negative", 0.0015),
    ("comma", 0.001),
    ("abc", 0.0005),
    ("zzz", 0.0015),
    ("dmy", 0.001),
    ("null_due", 0.001),
    ("weird", 0.001),
    ("orphan", 0.001),
    ("dup_id", 0.001),
)
_CONSENT_SHARES = (
    ("sms", 0.17),
    ("email", 0.08),
    ("none", 0.02),
    ("stop_keyword", 0.025),
    ("email_out", 0.015),
    ("all_out", 0.01),
    ("sms_out_crm", 0.01),
    ("conflict", 0.005),
    ("restart", 0.01),
    ("all_in", 0.005),
)
_SMS_IN = ("sms", "opt_in", "*", 0, True)
_EMAIL_IN = ("email", "opt_in", "*", 0, True)
_CONSENT_TEMPLATES: dict[str, tuple[tuple[str, str, str, int, bool], ...]] = {
    "both": (_SMS_IN, _EMAIL_IN),
    "sms": (_SMS_IN,),
    "email": (_EMAIL_IN,),
    "stop_keyword": (_SMS_IN, _EMAIL_IN, ("sms", "opt_out", "inbound_keyword", 1, True)),
    "email_out": (_SMS_IN, _EMAIL_IN, ("email", "opt_out", "web_form", 1, True)),
    "all_out": (_SMS_IN, _EMAIL_IN, ("all", "opt_out", "agent", 1, True)),
    "sms_out_crm": (_SMS_IN, ("sms", "opt_out", "crm", 1, True)),
    "conflict": (
        ("sms", "opt_in", "crm", 0, False),
        ("sms", "opt_out", "crm", 0, False),
        _EMAIL_IN,
    ),
    "restart": (
        _SMS_IN,
        ("sms", "opt_in", "inbound_keyword", 2, True),
        ("sms", "opt_out", "inbound_keyword", 1, True),
    ),
    "all_in": (("all", "opt_in", "crm", 0, True),),
}


def generate(n_customers: int, *, seed: int = 7, as_of: date) -> SampleData:
    """Build the canonical inputs for ``n_customers`` distinct customers around ``as_of``."""
    if n_customers < 1:
        raise ValueError("n_customers must be at least 1")
    gen = _Gen(n_customers, seed, as_of)
    base = gen.customers_base()
    known = base.filter(pl.col("customer_id").is_not_null()).select("customer_id", "true_country")
    customers = _as_strings(
        gen.customers_table(base.select(*_CUSTOMER_COLUMNS[:-1], "updated_s")), _CUSTOMER_COLUMNS
    )
    del base
    return SampleData(
        customers=customers,
        invoices=_as_strings(gen.invoices(known), _INVOICE_COLUMNS),
        consent_events=_as_strings(gen.consent_events(known), _CONSENT_COLUMNS),
        contact_history=_as_strings(gen.contact_history(known), _CONTACT_COLUMNS),
    )


def _as_strings(frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    return frame.select(pl.col(c).cast(pl.String) for c in columns)


class _Gen:
    def __init__(self, n: int, seed: int, as_of: date) -> None:
        self.n = n
        self.seed = seed
        self.as_of_s = int(datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC).timestamp())
        self.as_of_days = self.as_of_s // _DAY
        self.id_width = max(7, len(str(n)))

    def rng(self, stream: str) -> random.Random:
        return random.Random(f"sample-data/{self.seed}/{stream}")

    def uniform(self, stream: str, n: int) -> pl.Series:
        return _uniform(self.rng(stream), n).alias(stream)

    def exact(
        self, stream: str, n: int, shares: Sequence[tuple[str, float]], rest: str
    ) -> pl.Series:
        return _exact(self.rng(stream), n, shares, rest).alias(stream)

    def ts(self, seconds: pl.Expr) -> pl.Expr:
        return pl.from_epoch(seconds, time_unit="s").dt.strftime(_TS_FORMAT)

    def customer_id(self, number: pl.Expr) -> pl.Expr:
        return pl.lit("C") + number.cast(pl.String).str.zfill(self.id_width)

    def customers_base(self) -> pl.DataFrame:
        n = self.n
        shares = [(r.code, r.weight) for r in _REGIONS]
        total = sum(w for _, w in shares)
        df = pl.DataFrame(
            {
                "row": pl.int_range(0, n, eager=True),
                "region": self.exact(
                    "region", n, [(c, w / total) for c, w in shares[1:]], shares[0][0]
                ),
            }
        )
        df = df.with_columns(
            true_country=pl.col("region").replace_strict(
                {r.code: r.country for r in _REGIONS}, return_dtype=pl.String
            ),
            zone=pl.col("region").replace_strict(
                {r.code: r.zone for r in _REGIONS}, return_dtype=pl.String
            ),
        )
        df = df.with_columns(
            customer_id=pl.when(self.exact("id_mess", n, [("missing", 0.003)], "") == "missing")
            .then(pl.lit(None, pl.String))
            .otherwise(self.customer_id(pl.col("row") + 1)),
            updated_s=pl.lit(self.as_of_s)
            - 1
            - (self.uniform("updated", n) * 730 * _DAY).cast(pl.Int64),
        )
        df = self._names(df)
        df = self._phones(df)
        df = self._emails(df)
        return self._profile(df)

    def customers_table(self, base: pl.DataFrame) -> pl.DataFrame:
        known = base.filter(pl.col("customer_id").is_not_null())
        dup_flag = self.exact("dup", known.height, [("dup", 0.005)], "")
        dups = known.filter(dup_flag == "dup")
        k = dups.height
        older = (self.uniform("dup_age", k) * 400 * _DAY).cast(pl.Int64) + _DAY
        channel_change = self.uniform("dup_channel", k) < 0.5
        dups = dups.with_columns(
            updated_s=pl.col("updated_s") - older,
            preferred_channel=pl.when(channel_change)
            .then(pl.lit("email"))
            .otherwise(pl.col("preferred_channel")),
        )
        return pl.concat([base, dups]).with_columns(updated_at=self.ts(pl.col("updated_s")))

    def _names(self, df: pl.DataFrame) -> pl.DataFrame:
        n = df.height
        pools = _name_pools()
        sizes = pools.group_by("pool", maintain_order=True).len()
        table = {r.code: r.names for r in _REGIONS}
        df = df.with_columns(pool=_pick(df["region"], self.uniform("name_pool", n), table))
        df = df.join(sizes, on="pool", how="left", maintain_order="left").with_columns(
            idx=(self.uniform("name_idx", n) * pl.col("len")).cast(pl.Int64)
        )
        df = df.join(pools, on=["pool", "idx"], how="left", maintain_order="left")
        eastern = pl.col("pool").is_in(_EASTERN_ORDER)
        full = (
            pl.when(eastern)
            .then(pl.col("last") + pl.col("first"))
            .otherwise(pl.col("first") + " " + pl.col("last"))
        )
        form = self.exact("name_form", n, [("full_only", 0.15), ("parts_only", 0.15)], "both")
        mess = self.exact("name_mess", n, [("upper", 0.01), ("padded", 0.01)], "")
        full = (
            pl.when(mess == "upper")
            .then(full.str.to_uppercase())
            .when(mess == "padded")
            .then(pl.lit("  ") + full.str.replace(" ", "  ") + " ")
            .otherwise(full)
        )
        return df.with_columns(
            full_name=pl.when(form == "parts_only").then(pl.lit(None, pl.String)).otherwise(full),
            first_name=pl.when(form == "full_only")
            .then(pl.lit(None, pl.String))
            .otherwise(pl.col("first")),
            last_name=pl.when(form == "full_only")
            .then(pl.lit(None, pl.String))
            .otherwise(pl.col("last")),
        ).drop("len", "idx", "first", "last")

    def _phones(self, df: pl.DataFrame) -> pl.DataFrame:
        n = df.height
        comps = self.phone_components(df.select("row", "region"), "phone", 0)
        df = df.join(comps, on="row", how="left", maintain_order="left")
        df = df.with_columns(self.exact("phone_mess", n, _PHONE_MESS, "clean").alias("_mess"))
        parts = ("cc", "trunk", "area", "g1", "g2", "g3", "g4")
        shared = (pl.col("_mess") == "household") & pl.col("row").shift(1).over(
            "region"
        ).is_not_null()
        df = df.with_columns(
            pl.when(shared).then(pl.col(c).shift(1).over("region")).otherwise(pl.col(c)).alias(c)
            for c in parts
        )
        layout = self.exact("phone_layout", n, _PHONE_LAYOUTS, "national")
        ext = (self.uniform("phone_ext", n) * 900).cast(pl.Int64) + 10
        df = df.with_columns(layout.alias("_layout"), ext.alias("_ext"))
        df = df.with_columns(_formatted=_format_phone(pl.col("_layout"), pl.col("_ext")))

        wrong = df.filter(pl.col("_mess") == "wrong_country").select(
            "row",
            pl.col("region")
            .replace_strict({r.code: r.foreign for r in _REGIONS}, return_dtype=pl.String)
            .alias("region"),
        )
        foreign = self.phone_components(wrong, "foreign_phone", 10 * self.n + 1)
        as_national = self.uniform("foreign_layout", foreign.height) < 0.4
        foreign = foreign.with_columns(
            _foreign=_format_phone(
                pl.when(as_national).then(pl.lit("national")).otherwise(pl.lit("intl")),
                pl.lit(0),
            )
        ).select("row", "_foreign")
        df = df.join(foreign, on="row", how="left", maintain_order="left")

        pick = self.uniform("phone_pool", n)
        vanity = _from_pool(pick, _VANITY)
        garbage = _from_pool(pick, _GARBAGE)
        short = pl.col("g1") + "-" + pl.col("g2").str.slice(0, 2)
        mess = pl.col("_mess")
        phone = (
            pl.when(mess == "null")
            .then(pl.lit(None, pl.String))
            .when(mess == "blank")
            .then(pl.lit(" "))
            .when(mess == "garbage")
            .then(garbage)
            .when(mess == "short")
            .then(short)
            .when(mess == "vanity")
            .then(vanity)
            .when(mess == "wrong_country")
            .then(pl.col("_foreign"))
            .otherwise(pl.col("_formatted"))
        )
        return df.with_columns(phone=phone).drop(
            *parts, "_mess", "_layout", "_ext", "_formatted", "_foreign"
        )

    def phone_components(self, df: pl.DataFrame, stream: str, rank_offset: int) -> pl.DataFrame:
        """Per row: cc, trunk, area, g1..g4 of a valid number in the row's region."""
        blocks = _blocks_frame(self.seed)
        table = {
            r.code: tuple((f"{r.code}#{i}", b.weight) for i, b in enumerate(r.phones))
            for r in _REGIONS
        }
        block = _pick(df["region"], self.uniform(f"{stream}_block", df.height), table)
        df = df.with_columns(block=block)
        df = df.join(blocks, on="block", how="left", maintain_order="left")
        rank = pl.int_range(pl.len()).over("block") + rank_offset
        number = (rank * pl.col("mult") + pl.col("offset")) % pl.col("modulus")
        df = df.with_columns(
            sub=pl.col("sub_fixed") + number.cast(pl.String).str.zfill(pl.col("n_rand"))
        )
        groups = []
        for i in range(4):
            start, length = pl.col(f"o{i + 1}"), pl.col(f"l{i + 1}")
            groups.append(
                pl.when(length > 0)
                .then(pl.col("sub").str.slice(start, length))
                .otherwise(pl.lit(None, pl.String))
                .alias(f"g{i + 1}")
            )
        return df.with_columns(groups).select("row", "cc", "trunk", "area", "g1", "g2", "g3", "g4")

    def _emails(self, df: pl.DataFrame) -> pl.DataFrame:
        n = df.height
        sep = _from_pool(self.uniform("email_sep", n), (".", ".", ".", "_", ""))
        domain = _from_pool(
            self.uniform("email_domain", n),
            ("example.com",) * 5 + ("example.org",) * 3 + ("example.net",) * 2,
        )
        df = df.with_columns(_sep=sep, _domain=domain).with_columns(
            _local=pl.concat_str("afirst", "_sep", "alast", (pl.col("row") + 1).cast(pl.String))
        )
        sep, domain, local = pl.col("_sep"), pl.col("_domain"), pl.col("_local")
        clean = local + "@" + domain
        kind = self.exact("email_mess", n, _EMAIL_MESS, "clean")
        bad_kind = _from_pool(self.uniform("email_bad", n), _BAD_EMAIL_KINDS)
        bad = (
            pl.when(bad_kind == "no_domain")
            .then(local + "@")
            .when(bad_kind == "no_at")
            .then(local + "." + domain)
            .when(bad_kind == "tiny")
            .then(pl.col("afirst").str.slice(0, 1) + "@" + domain.str.slice(0, 1))
            .when(bad_kind == "double_at")
            .then(local + "@@" + domain)
            .when(bad_kind == "space")
            .then(pl.col("afirst") + " " + pl.col("alast") + "@" + domain)
            .otherwise(local + "@example")
        )
        mixed = pl.col("afirst").str.to_titlecase() + sep + pl.col("alast").str.to_uppercase()
        mixed = mixed + (pl.col("row") + 1).cast(pl.String) + "@" + domain.str.to_titlecase()
        email = (
            pl.when(kind == "null")
            .then(pl.lit(None, pl.String))
            .when(kind == "invalid")
            .then(bad)
            .when(kind == "mixed")
            .then(mixed)
            .when(kind == "padded")
            .then(pl.lit(" ") + clean + "  ")
            .when(kind == "mixed_padded")
            .then(pl.lit("  ") + mixed + " ")
            .otherwise(clean)
        )
        return df.with_columns(email=email).drop("afirst", "alast", "_sep", "_domain", "_local")

    def _profile(self, df: pl.DataFrame) -> pl.DataFrame:
        n = df.height
        country_mess = self.exact("country_mess", n, [("xx", 0.002), ("case", 0.005)], "")
        case_kind = self.uniform("country_case", n) < 0.5
        country = (
            pl.when(country_mess == "xx")
            .then(pl.lit("XX"))
            .when((country_mess == "case") & case_kind)
            .then(pl.col("true_country").str.to_lowercase())
            .when(country_mess == "case")
            .then(pl.lit(" ") + pl.col("true_country"))
            .otherwise(pl.col("true_country"))
        )
        df = df.with_columns(
            country=country, true_country=country.str.strip_chars().str.to_uppercase()
        )
        df = self._postal(df)

        alias = pl.col("region").replace_strict(
            {r.code: r.alias or r.zone for r in _REGIONS}, return_dtype=pl.String
        )
        tz_kind = self.exact(
            "tz_mess",
            n,
            [("null", 0.35), ("alias", 0.03), ("space", 0.015), ("bad", 0.035)],
            "valid",
        )
        tz = (
            pl.when(tz_kind == "null")
            .then(pl.lit(None, pl.String))
            .when(tz_kind == "alias")
            .then(alias)
            .when(tz_kind == "space")
            .then(pl.col("zone") + " ")
            .when(tz_kind == "bad")
            .then(_from_pool(self.uniform("tz_bad", n), _BAD_ZONES))
            .otherwise(pl.col("zone"))
        )

        table = {r.code: r.locales for r in _REGIONS}
        df = df.with_columns(_locale=_pick(df["region"], self.uniform("locale", n), table))
        locale_kind = self.exact("locale_mess", n, [("null", 0.08), ("hyphen", 0.10)], "")
        locale = (
            pl.when(locale_kind == "null")
            .then(pl.lit(None, pl.String))
            .when(locale_kind == "hyphen")
            .then(pl.col("_locale").str.replace("_", "-"))
            .otherwise(pl.col("_locale"))
        )
        channel_kind = self.exact(
            "channel", n, [("email", 0.34), ("null", 0.14), ("mess", 0.04)], "sms"
        )
        channel = (
            pl.when(channel_kind == "null")
            .then(pl.lit(None, pl.String))
            .when(channel_kind == "mess")
            .then(_from_pool(self.uniform("channel_mess", n), _CHANNEL_MESS))
            .otherwise(channel_kind)
        )
        return df.with_columns(
            preferred_timezone=tz, locale=locale, preferred_channel=channel
        ).drop("_locale")

    def _postal(self, df: pl.DataFrame) -> pl.DataFrame:
        n = df.height
        table = {r.code: tuple((p, 1.0) for p in r.postal) for r in _REGIONS}
        df = df.with_columns(_prefix=_pick(df["region"], self.uniform("postal_prefix", n), table))
        digits = [
            (self.uniform(f"postal_d{i}", n) * 10).cast(pl.Int64).cast(pl.String) for i in range(4)
        ]
        ca_letters = "ABCEGHJKLMNPRSTVWXYZ"
        gb_letters = "ABDEFGHJLNPQRSTUWXYZ"
        letters = [
            (self.uniform(f"postal_l{i}", n) * len(ca_letters)).cast(pl.Int64) for i in range(2)
        ]
        tail = pl.col("region").replace_strict(
            {r.code: r.postal_tail for r in _REGIONS}, return_dtype=pl.String
        )
        d0, d1, d2, d3 = (pl.lit(d) for d in digits)
        l0, l1 = (pl.lit(x) for x in letters)
        body = (
            pl.when(tail == "##")
            .then(d0 + d1)
            .when(tail == "###")
            .then(d0 + d1 + d2)
            .when(tail == "####")
            .then(d0 + d1 + d2 + d3)
            .when(tail == "#")
            .then(d0)
            .when(tail == " #?#")
            .then(pl.lit(" ") + d0 + pl.lit(ca_letters).str.slice(l0, 1) + d1)
            .when(tail == " #??")
            .then(
                pl.lit(" ")
                + d0
                + pl.lit(gb_letters).str.slice(l0, 1)
                + pl.lit(gb_letters).str.slice(l1, 1)
            )
            .otherwise(pl.lit(""))
        )
        df = df.with_columns(_postal=pl.col("_prefix") + body)
        postal = pl.col("_postal")
        kind = self.exact(
            "postal_mess",
            n,
            [("null", 0.02), ("squashed", 0.015), ("plus4", 0.01), ("lost_zero", 0.01)],
            "",
        )
        plus4 = (self.uniform("postal_plus4", n) * 9000).cast(pl.Int64) + 1000
        us = pl.col("true_country") == "US"
        postal = (
            pl.when(kind == "null")
            .then(pl.lit(None, pl.String))
            .when(kind == "squashed")
            .then(postal.str.replace_all(" ", "").str.to_lowercase())
            .when((kind == "plus4") & us)
            .then(postal + "-" + pl.lit(plus4).cast(pl.String))
            .when(kind == "lost_zero")
            .then(postal.str.strip_chars_start("0"))
            .otherwise(postal)
        )
        return df.with_columns(postal_code=postal).drop("_prefix", "_postal")

    def invoices(self, known: pl.DataFrame) -> pl.DataFrame:
        m = known.height
        count = self.exact("invoice_count", m, [("2", 0.30), ("3", 0.10)], "1").cast(pl.Int64)
        inv = (
            known.with_columns(count.alias("_count"))
            .with_columns(_k=pl.int_ranges(0, pl.col("_count")))
            .explode("_k", empty_as_null=False)
            .drop("_count", "_k")
        )
        n = inv.height
        width = max(6, len(str(n)))
        currency = pl.col("true_country").replace_strict(
            _CURRENCY, default="USD", return_dtype=pl.String
        )
        inv = inv.with_columns(
            invoice_id=pl.lit("INV-") + pl.int_range(1, n + 1).cast(pl.String).str.zfill(width),
            currency=currency,
        )
        status = self.exact(
            "invoice_status",
            n,
            [("partially_paid", 0.15), ("paid", 0.15), ("void", 0.05), ("disputed", 0.05)],
            "open",
        )
        step = self.exact("due_step", n, [("7", 0.08), ("1", 0.08), ("-3", 0.08), ("-7", 0.08)], "")
        spread = (self.uniform("due_spread", n) * 136).cast(pl.Int64) - 90
        offset = (
            pl.when(pl.lit(step) == "")
            .then(pl.lit(spread))
            .otherwise(pl.lit(step).cast(pl.Int64, strict=False))
        )
        u1 = pl.lit(self.uniform("amount_u1", n))
        u2 = pl.lit(self.uniform("amount_u2", n))
        z = (-2.0 * (1.0 - u1).log()).sqrt() * (2.0 * math.pi * u2).cos()
        usd = (z * 0.8).exp() * 120.0
        rate = currency.replace_strict(_USD_RATE, return_dtype=pl.Float64)
        whole = currency.is_in(_WHOLE_UNIT_CURRENCIES)
        local = (usd.clip(5.0, 20_000.0) * rate).clip(1.0, None)
        cents = pl.when(whole).then(local.round(0) * 100).otherwise((local * 100).round(0))
        remaining = (self.uniform("partial_share", n) * 0.6 + 0.2) * pl.col("_cents")
        inv = inv.with_columns(
            status=status,
            _due_days=pl.lit(self.as_of_days) + offset,
            _cents=cents.cast(pl.Int64),
        )
        due_s = pl.col("_due_days") * _DAY
        issue_s = pl.min_horizontal(due_s - 30 * _DAY, pl.lit(self.as_of_s - 2 * _DAY))
        span = pl.lit(self.as_of_s) - pl.col("_issue_s")
        paid_frac = self.uniform("paid_at", n) * 0.9
        upd_frac = self.uniform("invoice_updated", n)
        inv = (
            inv.with_columns(
                _issue_s=issue_s,
                _cents_due=pl.when(pl.col("status") == "paid")
                .then(pl.lit(0))
                .when(pl.col("status") == "partially_paid")
                .then(remaining.round(0).cast(pl.Int64).clip(1, None))
                .otherwise(pl.col("_cents")),
            )
            .with_columns(
                _paid_s=pl.when(pl.col("status") == "paid")
                .then(pl.col("_issue_s") + (span * pl.lit(paid_frac)).cast(pl.Int64))
                .otherwise(pl.lit(None, pl.Int64)),
                _updated_s=pl.col("_issue_s") + (span * pl.lit(upd_frac)).cast(pl.Int64),
            )
            .with_columns(
                _updated_s=pl.max_horizontal("_updated_s", "_paid_s").clip(None, self.as_of_s - 1)
            )
        )
        inv = inv.with_columns(
            amount_due=_money(pl.col("_cents_due")),
            due_date=pl.col("_due_days").cast(pl.Int32).cast(pl.Date).dt.strftime("%Y-%m-%d"),
            paid_at=self.ts(pl.col("_paid_s")),
            updated_at=self.ts(pl.col("_updated_s")),
        )
        return self._invoice_mess(inv)

    def _invoice_mess(self, inv: pl.DataFrame) -> pl.DataFrame:
        n = inv.height
        bad = self.exact("invoice_mess", n, _INVOICE_MESS, "")
        inv = inv.with_columns(bad.alias("_bad"), pl.int_range(0, n).alias("_row"))
        b = pl.col("_bad")
        inv = inv.with_columns(
            amount_due=pl.when(b == "negative")
            .then(pl.lit("-") + _money(pl.col("_cents")))
            .when(b == "comma")
            .then(pl.col("amount_due").str.replace(".", ",", literal=True))
            .when(b == "abc")
            .then(pl.lit("abc"))
            .otherwise(pl.col("amount_due")),
            currency=pl.when(b == "zzz").then(pl.lit("ZZZ")).otherwise(pl.col("currency")),
            due_date=pl.when(b == "dmy")
            .then(pl.col("_due_days").cast(pl.Int32).cast(pl.Date).dt.strftime("%d/%m/%Y"))
            .when(b == "null_due")
            .then(pl.lit(None, pl.String))
            .otherwise(pl.col("due_date")),
            status=pl.when(b == "weird").then(pl.lit("weird")).otherwise(pl.col("status")),
            customer_id=pl.when(b == "orphan")
            .then(self.customer_id(pl.col("_row") + self.n + 1))
            .otherwise(pl.col("customer_id")),
        )
        dups = inv.filter(b == "dup_id")
        back = pl.lit(self.uniform("invoice_dup_age", dups.height))
        back = (back * (pl.col("_updated_s") - pl.col("_issue_s"))).cast(pl.Int64) + 60
        dups = dups.with_columns(
            status=pl.lit("open"),
            amount_due=_money(pl.col("_cents")),
            paid_at=pl.lit(None, pl.String),
            updated_at=self.ts(pl.col("_updated_s") - back),
        )
        return pl.concat([inv, dups])

    def consent_events(self, known: pl.DataFrame) -> pl.DataFrame:
        m = known.height
        scenario = self.exact("consent", m, _CONSENT_SHARES, "both")
        t0 = pl.lit(self.as_of_s) - ((self.uniform("consent_t0", m) * 1095 + 5) * _DAY).cast(
            pl.Int64
        )
        cust = known.select("customer_id").with_columns(
            scenario=scenario,
            _t0=t0,
            _f1=self.uniform("consent_f1", m) * 0.4 + 0.3,
            _f2=self.uniform("consent_f2", m) * 0.2 + 0.75,
        )
        templates = pl.DataFrame(
            [
                {
                    "scenario": s,
                    "channel": ch,
                    "status": st,
                    "_source": src,
                    "_step": step,
                    "_order": order,
                    "_jitter": jit,
                }
                for s, events in _CONSENT_TEMPLATES.items()
                for order, (ch, st, src, step, jit) in enumerate(events)
            ]
        )
        ev = cust.join(templates, on="scenario", how="inner", maintain_order="left_right").drop(
            "scenario"
        )
        k = ev.height
        jitter = (self.uniform("consent_jitter", k) * 7200).cast(pl.Int64)
        src_u = self.uniform("consent_source", k)
        span = pl.lit(self.as_of_s) - pl.col("_t0")
        frac = (
            pl.when(pl.col("_step") == 0)
            .then(pl.lit(0.0))
            .when(pl.col("_step") == 1)
            .then(pl.col("_f1"))
            .otherwise(pl.col("_f2"))
        )
        at = (
            pl.col("_t0")
            + (span * frac).cast(pl.Int64)
            + pl.when(pl.col("_jitter")).then(pl.lit(jitter)).otherwise(pl.lit(0))
        )
        source = (
            pl.when(pl.col("_source") != "*")
            .then(pl.col("_source"))
            .when(pl.lit(src_u) < 0.6)
            .then(pl.lit("web_form"))
            .when(pl.lit(src_u) < 0.92)
            .then(pl.lit("crm"))
            .otherwise(pl.lit("agent"))
        )
        return ev.with_columns(source=source, occurred_at=self.ts(at.clip(None, self.as_of_s - 1)))

    def contact_history(self, known: pl.DataFrame) -> pl.DataFrame:
        m = known.height
        cat = self.exact("contact", m, [("h24", 0.04), ("h72", 0.06), ("old", 0.30)], "none")
        extra = (self.uniform("contact_extra", m) * 3).cast(pl.Int64)
        count = (
            pl.when(cat == "none")
            .then(pl.lit(0))
            .when(cat == "old")
            .then(pl.lit(extra) + 1)
            .otherwise(pl.lit(1) + (pl.lit(extra) >= 2).cast(pl.Int64))
        )
        rows = (
            known.select("customer_id")
            .with_columns(cat.alias("_cat"), count.alias("_n"))
            .filter(pl.col("_n") > 0)
            .with_columns(_k=pl.int_ranges(0, pl.col("_n")))
            .explode("_k", empty_as_null=False)
        )
        k = rows.height
        u = pl.lit(self.uniform("contact_at", k))
        recent = pl.col("_k") == 0
        back = (
            pl.when(recent & (pl.col("_cat") == "h24"))
            .then(1 + u * (_DAY - 1))
            .when(recent & (pl.col("_cat") == "h72"))
            .then(_DAY + u * (2 * _DAY))
            .otherwise(4 * _DAY + u * (116 * _DAY))
        ).cast(pl.Int64)
        channel = (
            pl.when(pl.lit(self.uniform("contact_channel", k)) < 0.65)
            .then(pl.lit("sms"))
            .otherwise(pl.lit("email"))
        )
        o = pl.lit(self.uniform("contact_outcome", k))
        outcome = (
            pl.when(o < 0.75)
            .then(pl.lit("delivered"))
            .when(o < 0.85)
            .then(pl.lit("failed"))
            .when(o < 0.97)
            .then(pl.lit("no_answer"))
            .otherwise(pl.lit(None, pl.String))
        )
        rows = rows.with_columns(channel=channel, outcome=outcome, _at=pl.lit(self.as_of_s) - back)
        return rows.sort("customer_id", "_at", maintain_order=True).with_columns(
            attempted_at=self.ts(pl.col("_at"))
        )


def _format_phone(layout: pl.Expr, ext: pl.Expr) -> pl.Expr:
    cc, trunk, area = pl.col("cc"), pl.col("trunk"), pl.col("area")
    groups = [pl.col(f"g{i}") for i in range(1, 5)]
    nanp = cc == "1"
    lead = trunk + area

    def joined(sep: str, *head: pl.Expr) -> pl.Expr:
        return pl.concat_str([*head, *groups], separator=sep, ignore_nulls=True)

    e164 = pl.lit("+") + cc + joined("", area)
    intl = joined(" ", pl.lit("+") + cc, area)
    nanp_national = pl.lit("(") + area + ") " + pl.col("g1") + "-" + pl.col("g2")
    national = pl.when(nanp).then(nanp_national).otherwise(joined(" ", lead))
    dashes = joined("-", lead)
    dots = joined(".", lead)
    compact = joined("", lead)
    with_ext = (
        pl.when(nanp)
        .then(dashes + " x" + ext.cast(pl.String))
        .otherwise(national + " ext. " + ext.cast(pl.String))
    )
    idd = (
        pl.when(nanp)
        .then(joined("-", pl.lit("001"), area))
        .otherwise(joined(" ", pl.lit("00") + cc, area))
    )
    return (
        pl.when(layout == "e164")
        .then(e164)
        .when(layout == "intl")
        .then(intl)
        .when(layout == "dashes")
        .then(dashes)
        .when(layout == "dots")
        .then(dots)
        .when(layout == "compact")
        .then(compact)
        .when(layout == "ext")
        .then(with_ext)
        .when(layout == "idd")
        .then(idd)
        .otherwise(national)
    )


def _money(cents: pl.Expr) -> pl.Expr:
    return (cents // 100).cast(pl.String) + "." + (cents % 100).cast(pl.String).str.zfill(2)


def _from_pool(u: pl.Series, pool: Sequence[str]) -> pl.Expr:
    index = (u * len(pool)).cast(pl.Int64).clip(0, len(pool) - 1)
    return pl.lit(index.replace_strict(dict(enumerate(pool)), return_dtype=pl.String))


def _uniform(rng: random.Random, n: int) -> pl.Series:
    """n floats in [0, 1) from 53 random bits each; stable across Python versions."""
    if n == 0:
        return pl.Series([], dtype=pl.Float64)
    raw = pa.Array.from_buffers(pa.uint64(), n, [None, pa.py_buffer(rng.randbytes(8 * n))])
    bits = pl.Series(raw)
    return (bits // 2048).cast(pl.Float64) * (2.0**-53)


def _exact(rng: random.Random, n: int, shares: Sequence[tuple[str, float]], rest: str) -> pl.Series:
    """Labels with exact counts (round(share * n), at least one once n >= 100), shuffled."""
    frame = pl.DataFrame({"r": _uniform(rng, n).rank("ordinal").cast(pl.Int64) - 1})
    if not shares:
        return pl.Series([rest] * n, dtype=pl.String)
    chain = None
    bound = 0
    for label, share in shares:
        count = round(share * n)
        if count == 0 and share > 0 and n >= _MIN_ROWS_FOR_ONE:
            count = 1
        bound = min(n, bound + count)
        cond = pl.col("r") < bound
        chain = (
            pl.when(cond).then(pl.lit(label))
            if chain is None
            else chain.when(cond).then(pl.lit(label))
        )
    assert chain is not None
    return frame.select(chain.otherwise(pl.lit(rest)).alias("x"))["x"]


def _pick(
    keys: pl.Series, u: pl.Series, table: Mapping[str, Sequence[tuple[str, float]]]
) -> pl.Series:
    """Per row, a value drawn by weight from ``table[key]`` with the row's uniform ``u``."""
    rows: list[tuple[str, float, str]] = []
    for key, options in table.items():
        total = sum(w for _, w in options)
        cum = 0.0
        for i, (value, weight) in enumerate(options):
            cum += weight / total
            rows.append((key, 2.0 if i == len(options) - 1 else cum, value))
    lookup = pl.DataFrame(rows, schema=["key", "cum", "value"], orient="row").sort("cum")
    left = pl.DataFrame({"key": keys, "u": u}).with_row_index("row").sort("u")
    joined = left.join_asof(
        lookup, left_on="u", right_on="cum", by="key", strategy="forward", check_sortedness=False
    )
    return joined.sort("row")["value"]


@cache
def _blocks_frame(seed: int) -> pl.DataFrame:
    rng = random.Random(f"sample-data/{seed}/phone-blocks")
    rows = []
    for region in _REGIONS:
        for i, block in enumerate(region.phones):
            assert sum(block.groups) == len(block.sub_fixed) + block.n_rand, block
            modulus = 10**block.n_rand
            mult = rng.randrange(modulus // 3, modulus) | 1
            while mult % 5 == 0:
                mult += 2
            row: dict[str, object] = {
                "block": f"{region.code}#{i}",
                "cc": block.cc,
                "trunk": block.trunk,
                "area": block.area,
                "sub_fixed": block.sub_fixed,
                "n_rand": block.n_rand,
                "modulus": modulus,
                "mult": mult,
                "offset": rng.randrange(modulus),
            }
            start = 0
            for g in range(4):
                length = block.groups[g] if g < len(block.groups) else 0
                row[f"o{g + 1}"] = start
                row[f"l{g + 1}"] = length
                start += length
            rows.append(row)
    return pl.DataFrame(rows, schema_overrides={"area": pl.String})


def _ascii(text: str) -> str:
    text = text.translate(_FOLD)
    text = "".join(_CYRILLIC.get(c, c) for c in text.lower())
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum())


@cache
def _name_pools() -> pl.DataFrame:
    """(pool, idx, first, last, afirst, alast): fixed, seeded name pools per locale."""
    rows: list[tuple[str, int, str, str, str, str]] = []
    locales = sorted({p for r in _REGIONS for p, _ in r.names} - {"accented", "maori"} | {"en_IN"})
    pairs: dict[str, list[tuple[str, str]]] = {}
    ascii_pairs: dict[str, list[tuple[str, str]]] = {}
    for locale in locales:
        fake = Faker(locale)
        fake.seed_instance(_POOL_SEED)
        seen: dict[tuple[str, str], None] = {}
        romanized: list[tuple[str, str]] = []
        for i in range(_POOL_SIZE):
            if i % 2:
                pair = (fake.first_name_female(), fake.last_name_female())
            else:
                pair = (fake.first_name_male(), fake.last_name_male())
            seen.setdefault(pair)
            if hasattr(fake, "first_romanized_name"):
                romanized.append((fake.first_romanized_name(), fake.last_romanized_name()))
        pairs[locale] = list(seen)
        ascii_pairs[locale] = romanized
    pairs["accented"] = [
        (f, _ACCENTED_LAST[(i * 7) % len(_ACCENTED_LAST)]) for i, f in enumerate(_ACCENTED_FIRST)
    ] + [
        (_ACCENTED_FIRST[(i * 3) % len(_ACCENTED_FIRST)], last)
        for i, last in enumerate(_ACCENTED_LAST)
    ]
    pairs["maori"] = [
        (f, _MAORI_LAST[(i * 5) % len(_MAORI_LAST)]) for i, f in enumerate(_MAORI_FIRST)
    ] + [(_MAORI_FIRST[(i * 7) % len(_MAORI_FIRST)], last) for i, last in enumerate(_MAORI_LAST)]
    ascii_pairs["ko_KR"] = list(_KOREAN_ASCII)
    for pool, companion in _ASCII_COMPANION.items():
        ascii_pairs[pool] = pairs[companion]
    for pool, names in pairs.items():
        companions = ascii_pairs.get(pool) or []
        for idx, (first, last) in enumerate(names):
            afirst, alast = _ascii(first), _ascii(last)
            if (not afirst or not alast) and companions:
                cf, cl = companions[idx % len(companions)]
                afirst, alast = _ascii(cf), _ascii(cl)
            rows.append((pool, idx, first, last, afirst or "customer", alast or "x"))
    return pl.DataFrame(
        rows,
        schema=["pool", "idx", "first", "last", "afirst", "alast"],
        orient="row",
        schema_overrides={"idx": pl.Int64},
    )
