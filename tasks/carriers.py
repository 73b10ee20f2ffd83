"""Carrier records and carrier invoices: layouts as mapping files, pure parsers, idempotent loads.

What the carriers say they did and billed, one row per carrier message (per part where the
carrier reports parts), whatever the layout. Every layout, built-in or a user's, is one
column-mapping TOML file (``carrier_layouts/<name>.toml``; see :class:`Layout` for the keys and
README "Carrier records" for a worked example). Built in: ``twilio`` (Message resource JSON),
``twilio_bulkexport`` (BulkExport day files, JSON lines, gzip or not), ``twilio_csv`` (a
console-like CSV), ``aws_eum`` (AWS End User Messaging SMS events), ``aws_pinpoint`` (the
legacy Pinpoint SMS stream, millicents), ``vonage_dlr`` (per-part delivery receipts) and
``metro_csv`` (an example of a CSV in the carrier's local time zone).

Contract
--------
* :func:`read_carrier_file` is the I/O edge: bytes (gzip detected by its magic) -> one string
  row per input record with the mapped fields (JSON numbers kept as their literal text, so a
  price never passes through a float). :func:`parse_carrier_records` is a pure polars transform
  of that frame into ``carrier_records`` rows and quarantine rows.
* Money lands exactly: the literal is read with :class:`decimal.Decimal` (once per distinct
  value), scaled by the layout's unit (``micros``, ``millicents`` = 10 micros, ``cents`` = 10,000
  micros, ``decimal_major`` = 1,000,000 micros) and signed so that a positive ``price_micros`` is
  a charge. A value finer than one micro-unit is quarantined, never rounded. ``price_final`` is
  true when a price is present (and the layout's ``final`` field, if mapped, is true).
* Timestamps land as naive UTC. Formats per layout (or per column): ``rfc2822``, ``iso8601``,
  ``epoch_ms``, ``epoch_s`` or strptime patterns; a value without an offset is wall time in the
  layout's ``zone``. A wall time that is ambiguous or does not exist there (DST) is quarantined.
* Fail closed (rules, first failing one wins, scope ``row``, source ``carrier_records:<carrier>``):
  ``record_unreadable``, ``id_missing``, ``status_unknown`` (not in the layout's status map),
  ``to_address_invalid`` (not E.164 after removing spaces, dots, dashes, brackets),
  ``timestamp_missing``, ``timestamp_invalid``, ``timestamp_ambiguous``, ``price_invalid``,
  ``currency_invalid``, ``segments_invalid``, ``part_invalid``; then, per natural key
  (carrier, carrier_message_id, part_index) inside one file: the latest version is kept and
  every other row is ``carrier_record_superseded``; rows tied on the latest version with
  different content are all ``carrier_record_conflict``. Rows in = records + quarantined.
* Version order of one carrier message: status rank (pending < accepted < terminal), then
  ``price_final``, then ``updated_at_utc``. A load replaces a stored row only with a strictly
  later version (a late price replaces a pending one; an out-of-order ``sent`` never replaces
  ``delivered``); an equal version keeps the stored row, so loading a file twice changes
  nothing, and a rebuild from all files equals the incremental result (except for rows that
  conflict on an equal version: a rebuild quarantines both, incremental loads keep the first).
* Loads (:func:`load_carrier_records`, :func:`load_carrier_invoices`) run in the caller's
  transaction: stage into a temp table, delete by natural key, insert. ``load_id`` is derived
  from the layout and the file's bytes, and the file's quarantine rows are stored under
  ``run_id = load_id`` (replaced on a reload), so a reload is a no-op there too.
* Invoices: Twilio Usage Records JSON (:func:`parse_twilio_usage_records`) or the generic CSV
  ``period_start,period_end,category,count,amount,currency[,account_ref]`` (amount in major
  units, positive = charge; :func:`parse_invoice_csv`); rules ``period_invalid``,
  ``category_missing``, ``count_invalid``, ``amount_invalid``, ``currency_invalid``,
  ``invoice_line_duplicate``, ``invoice_line_conflict``; source ``carrier_invoices:<carrier>``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation, localcontext
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from data_quality.rules import QUARANTINE_SCHEMA, Rule, empty_quarantine, split_rows
from tasks.warehouse import read_frame, write_frame

__all__ = [
    "CANONICAL_FIELDS",
    "CARRIER_RECORD_SCHEMA",
    "INVOICE_SCHEMA",
    "STATUS_CLASSES",
    "CarrierParse",
    "InvoiceParse",
    "Layout",
    "LayoutError",
    "builtin_layouts",
    "load_carrier_file",
    "load_carrier_invoices",
    "load_carrier_records",
    "load_layout",
    "parse_carrier_file",
    "parse_carrier_records",
    "parse_invoice_csv",
    "parse_twilio_usage_records",
    "read_carrier_file",
]

STATUS_CLASSES = ("pending", "accepted", "delivered", "undelivered", "failed")
_STATUS_RANK = {"pending": 0, "accepted": 1, "delivered": 2, "undelivered": 2, "failed": 2}

CANONICAL_FIELDS = (
    "carrier_message_id",
    "account_ref",
    "from_address",
    "to_address",
    "direction",
    "status",
    "error_code",
    "num_segments",
    "price",
    "price_currency",
    "sent_at",
    "updated_at",
    "sender_reference",
    "body",
    "part_index",
    "parts_total",
    "final",
)
_TIMESTAMP_FIELDS = ("sent_at", "updated_at")
_BUILTIN_FORMATS = ("rfc2822", "iso8601", "epoch_ms", "epoch_s")
MONEY_UNITS: dict[str, int] = {
    "micros": 1,
    "millicents": 10,
    "cents": 10_000,
    "decimal_major": 1_000_000,
}
_SIGNS = ("negative_is_charge", "positive_is_charge")
_FORMATS = ("json", "jsonl", "csv")

CARRIER_RECORD_SCHEMA: dict[str, pl.DataType] = {
    "carrier": pl.String(),
    "carrier_message_id": pl.String(),
    "part_index": pl.Int32(),
    "parts_total": pl.Int32(),
    "account_ref": pl.String(),
    "from_address": pl.String(),
    "to_address": pl.String(),
    "direction": pl.String(),
    "status": pl.String(),
    "status_class": pl.String(),
    "error_code": pl.String(),
    "num_segments": pl.Int32(),
    "price_micros": pl.Int64(),
    "price_currency": pl.String(),
    "price_final": pl.Boolean(),
    "sent_at_utc": pl.Datetime("us"),
    "updated_at_utc": pl.Datetime("us"),
    "sender_reference": pl.String(),
    "body_sha256": pl.String(),
    "source_file": pl.String(),
    "source_row": pl.Int32(),
    "loaded_at_utc": pl.Datetime("us"),
    "load_id": pl.String(),
}
_RECORD_KEY = ["carrier", "carrier_message_id", "part_index"]
_RECORD_CONTENT = [
    c
    for c in CARRIER_RECORD_SCHEMA
    if c not in ("source_file", "source_row", "loaded_at_utc", "load_id")
]

INVOICE_SCHEMA: dict[str, pl.DataType] = {
    "carrier": pl.String(),
    "account_ref": pl.String(),
    "period_start": pl.Date(),
    "period_end": pl.Date(),
    "category": pl.String(),
    "count": pl.Int64(),
    "count_unit": pl.String(),
    "amount_micros": pl.Int64(),
    "currency": pl.String(),
    "source_file": pl.String(),
    "source_row": pl.Int32(),
    "loaded_at_utc": pl.Datetime("us"),
    "load_id": pl.String(),
}
_INVOICE_KEY = ["carrier", "account_ref", "period_start", "period_end", "category"]
_INVOICE_CONTENT = [*_INVOICE_KEY, "count", "count_unit", "amount_micros", "currency"]


class LayoutError(ValueError):
    """A mapping file that cannot describe a layout (a configuration error, raised at load)."""


@dataclass(frozen=True)
class FieldSpec:
    """Where one canonical field comes from: the first non-empty of ``paths`` (dotted for JSON)."""

    paths: tuple[str, ...]
    formats: tuple[str, ...] | None = None
    zone: str | None = None


@dataclass(frozen=True)
class Layout:
    """One carrier file layout, read from a mapping TOML file (see the module docstring).

    Keys: ``carrier`` (the ``carrier`` column value), ``format`` (json | jsonl | csv),
    ``records`` (json: the key holding the list), ``delimiter``/``encoding`` (csv), ``add_plus``
    (prefix ``+`` to an all-digit recipient), ``[timestamps] formats, zone``, ``[money] unit,
    sign, currency, pending_when_null``, ``[columns]`` canonical field = a source column, a
    list of them (first non-empty wins) or ``{path, formats, zone}``, ``[constants]`` canonical
    field = fixed value, ``[status_map]`` carrier status = status class (case-insensitive).
    """

    name: str
    carrier: str
    format: str
    columns: Mapping[str, FieldSpec]
    status_map: Mapping[str, str]
    timestamp_formats: tuple[str, ...] = ("iso8601",)
    zone: str = "UTC"
    money_unit: str = "decimal_major"
    money_sign: str = "positive_is_charge"
    currency: str | None = None
    pending_when_null: bool = True
    constants: Mapping[str, str] = field(default_factory=dict)
    records: str | None = None
    delimiter: str = ","
    encoding: str = "utf-8"
    add_plus: bool = False

    @property
    def source(self) -> str:
        return f"carrier_records:{self.carrier}"


def _layout_dir() -> Any:
    return resources.files("carrier_layouts")


def builtin_layouts() -> list[str]:
    """Names of the shipped mapping files (``carrier_layouts/*.toml``)."""
    return sorted(e.name[:-5] for e in _layout_dir().iterdir() if e.name.endswith(".toml"))


def load_layout(name_or_path: str | Path) -> Layout:
    """A built-in layout by name, or a mapping TOML file by path; raises :class:`LayoutError`."""
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.exists():
        text, name = path.read_text(encoding="utf-8"), path.stem
    else:
        entry = _layout_dir().joinpath(f"{name_or_path}.toml")
        if not entry.is_file():
            raise LayoutError(
                f"no carrier layout {name_or_path!r}: built in are {', '.join(builtin_layouts())}"
            )
        text, name = entry.read_text(encoding="utf-8"), str(name_or_path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LayoutError(f"{name}: {exc}") from exc
    return layout_from_mapping(name, data)


def _zone(name: str, where: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise LayoutError(f"{where}: unknown time zone {name!r}") from exc
    return name


def _str_tuple(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        raise LayoutError(f"{where}: expected a string or a non-empty list of strings")
    return tuple(items)


def layout_from_mapping(name: str, data: Mapping[str, Any]) -> Layout:
    """Validate a parsed mapping file (unknown keys, units, zones, status classes)."""
    known = {
        "carrier",
        "format",
        "records",
        "delimiter",
        "encoding",
        "add_plus",
        "timestamps",
        "money",
        "columns",
        "constants",
        "status_map",
    }
    unknown = sorted(set(data) - known)
    if unknown:
        raise LayoutError(f"{name}: unknown keys {', '.join(unknown)}")
    carrier = data.get("carrier")
    if not isinstance(carrier, str) or not carrier:
        raise LayoutError(f"{name}: carrier must be a non-empty string")
    fmt = data.get("format")
    if fmt not in _FORMATS:
        raise LayoutError(f"{name}: format must be one of {', '.join(_FORMATS)}")
    ts = data.get("timestamps", {})
    formats = _str_tuple(ts.get("formats", ["iso8601"]), f"{name}: timestamps.formats")
    zone = _zone(ts.get("zone", "UTC"), f"{name}: timestamps.zone")
    money = data.get("money", {})
    unit = money.get("unit", "decimal_major")
    if unit not in MONEY_UNITS:
        raise LayoutError(f"{name}: money.unit must be one of {', '.join(MONEY_UNITS)}")
    sign = money.get("sign", "positive_is_charge")
    if sign not in _SIGNS:
        raise LayoutError(f"{name}: money.sign must be one of {', '.join(_SIGNS)}")
    columns: dict[str, FieldSpec] = {}
    for canonical, spec in data.get("columns", {}).items():
        if canonical not in CANONICAL_FIELDS:
            raise LayoutError(
                f"{name}: columns.{canonical} is not a canonical field "
                f"({', '.join(CANONICAL_FIELDS)})"
            )
        where = f"{name}: columns.{canonical}"
        if isinstance(spec, dict):
            extra = sorted(set(spec) - {"path", "formats", "zone"})
            if extra or "path" not in spec:
                raise LayoutError(f"{where}: a table needs path (and may have formats, zone)")
            columns[canonical] = FieldSpec(
                _str_tuple(spec["path"], where),
                _str_tuple(spec["formats"], where) if "formats" in spec else None,
                _zone(spec["zone"], where) if "zone" in spec else None,
            )
        else:
            columns[canonical] = FieldSpec(_str_tuple(spec, where))
    constants = {k: str(v) for k, v in data.get("constants", {}).items()}
    for canonical in constants:
        if canonical not in CANONICAL_FIELDS or canonical in columns:
            raise LayoutError(f"{name}: constants.{canonical} unknown or also a column")
    for required in ("carrier_message_id", "to_address", "status", "sent_at"):
        if required not in columns:
            raise LayoutError(f"{name}: columns.{required} is required")
    status_map: dict[str, str] = {}
    for raw, klass in data.get("status_map", {}).items():
        if klass not in STATUS_CLASSES:
            raise LayoutError(
                f"{name}: status_map.{raw} = {klass!r}; use one of {', '.join(STATUS_CLASSES)}"
            )
        status_map[str(raw).strip().casefold()] = klass
    if not status_map:
        raise LayoutError(f"{name}: status_map is empty")
    return Layout(
        name=name,
        carrier=carrier,
        format=fmt,
        columns=columns,
        status_map=status_map,
        timestamp_formats=formats,
        zone=zone,
        money_unit=unit,
        money_sign=sign,
        currency=money.get("currency"),
        pending_when_null=bool(money.get("pending_when_null", True)),
        constants=constants,
        records=data.get("records"),
        delimiter=data.get("delimiter", ","),
        encoding=data.get("encoding", "utf-8"),
        add_plus=bool(data.get("add_plus", False)),
    )


# --------------------------------------------------------------------------------------------
# The I/O edge: bytes -> one string row per record
# --------------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def _dig(record: Any, path: str) -> Any:
    value = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _paths(layout: Layout) -> dict[str, tuple[str, ...]]:
    return {canonical: spec.paths for canonical, spec in layout.columns.items()}


def _raw_columns(layout: Layout) -> list[str]:
    """``raw_<field>:<path>`` columns: every source path a field may come from."""
    return [f"{c}:{p}" for c, paths in _paths(layout).items() for p in paths]


def _decompress(data: bytes) -> bytes:
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError):
            return data
    return data


def _json_loads(text: str) -> Any:
    # Numbers stay their literal text: 0.09582 must not become a float.
    return json.loads(text, parse_float=str, parse_int=str, parse_constant=str)


def read_carrier_file(data: bytes, layout: Layout) -> pl.DataFrame:
    """Decode one carrier file: ``source_row`` (1-based record number), ``unreadable`` (why a
    record could not be read, else null), ``raw_line`` and one string column per mapped path.
    """
    data = _decompress(data)
    columns = _raw_columns(layout)
    rows: list[dict[str, Any]] = []

    def add(number: int, record: Any, problem: str | None, line: str | None) -> None:
        row: dict[str, Any] = {"source_row": number, "unreadable": problem, "raw_line": line}
        for canonical, paths in _paths(layout).items():
            for path in paths:
                row[f"{canonical}:{path}"] = _text(_dig(record, path)) if problem is None else None
        rows.append(row)

    if layout.format == "jsonl":
        text = data.decode("utf-8", errors="replace")
        number = 0
        for line in text.splitlines():
            if not line.strip():
                continue
            number += 1
            if "\ufffd" in line:
                add(number, None, "not valid UTF-8", line)
                continue
            try:
                record = _json_loads(line)
            except ValueError as exc:
                add(number, None, f"not JSON: {exc}", line)
                continue
            if not isinstance(record, dict):
                add(number, None, "not a JSON object", line)
            else:
                add(number, record, None, None)
    elif layout.format == "json":
        try:
            document = _json_loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            add(1, None, f"not JSON: {exc}", data[:1000].decode("utf-8", errors="replace"))
            document = None
        if document is not None:
            if isinstance(document, dict) and layout.records and layout.records in document:
                items = document[layout.records]
            elif isinstance(document, list):
                items = document
            else:
                items = [document]
            if not isinstance(items, list):
                items = [items]
            for number, record in enumerate(items, start=1):
                if isinstance(record, dict):
                    add(number, record, None, None)
                else:
                    add(number, None, "not a JSON object", _text(record))
    else:
        text = data.decode(layout.encoding, errors="replace")
        if text.startswith("\ufeff"):
            text = text[1:]
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=layout.delimiter)
        header = next(reader, None) or []
        names = [h.strip() for h in header]
        for number, cells in enumerate(reader, start=1):
            if not any(c.strip() for c in cells):
                number -= 1
                continue
            line = layout.delimiter.join(cells)
            if "\ufffd" in line:
                add(number, None, f"not valid {layout.encoding}", line)
            elif len(cells) != len(names):
                add(number, None, f"{len(cells)} cells for {len(names)} columns", line)
            else:
                add(number, dict(zip(names, cells, strict=True)), None, None)
    schema = {"source_row": pl.Int32(), "unreadable": pl.String(), "raw_line": pl.String()}
    schema |= {c: pl.String() for c in columns}
    return pl.DataFrame(rows, schema=schema, orient="row")


# --------------------------------------------------------------------------------------------
# Pure transforms
# --------------------------------------------------------------------------------------------


def _map_distinct(column: str, fn: Callable[[str], Any], dtype: pl.DataType) -> pl.Expr:
    """``fn`` once per distinct non-null value of ``column`` (no per-row Python)."""

    def batch(values: pl.Series) -> pl.Series:
        distinct = values.drop_nulls().unique()
        mapped = pl.Series([fn(v) for v in distinct.to_list()], dtype=dtype)
        return values.replace_strict(distinct, mapped, default=None, return_dtype=dtype)

    return pl.col(column).map_batches(batch, return_dtype=dtype)


def _clean(expr: pl.Expr) -> pl.Expr:
    stripped = expr.str.strip_chars()
    return pl.when(stripped == "").then(None).otherwise(stripped)


def _field(layout: Layout, canonical: str) -> pl.Expr:
    """The first non-empty source path of a canonical field, or its constant, or null."""
    if canonical in layout.columns:
        return pl.coalesce(
            [_clean(pl.col(f"{canonical}:{p}")) for p in layout.columns[canonical].paths]
        )
    if canonical in layout.constants:
        return pl.lit(layout.constants[canonical], dtype=pl.String)
    return pl.lit(None, dtype=pl.String)


_RFC2822 = ("%a, %d %b %Y %H:%M:%S %z", "%d %b %Y %H:%M:%S %z", "%a, %d %b %Y %H:%M %z")
_ISO_AWARE = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M%#z")
_ISO_NAIVE = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M")


def _timestamp(expr: pl.Expr, formats: Sequence[str], zone: str) -> tuple[pl.Expr, pl.Expr]:
    """(naive UTC instant, parsed-as-wall-time-but-not-placeable) for one text column.

    Aware formats (offsets, epochs) give the instant; naive ones are wall time in ``zone``; the
    second expression is true where a wall time is ambiguous or missing in ``zone`` (DST).
    """
    aware: list[pl.Expr] = []
    naive: list[pl.Expr] = []
    for fmt in formats:
        if fmt == "rfc2822":
            aware += [
                expr.str.replace(r"\s+(GMT|UT|UTC)$", " +0000").str.strptime(
                    pl.Datetime("us", "UTC"), f, strict=False
                )
                for f in _RFC2822
            ]
        elif fmt == "iso8601":
            aware += [
                expr.str.strptime(pl.Datetime("us", "UTC"), f, strict=False) for f in _ISO_AWARE
            ]
            naive += [expr.str.strptime(pl.Datetime("us"), f, strict=False) for f in _ISO_NAIVE]
            naive.append(expr.str.strptime(pl.Datetime("us"), "%Y-%m-%d", strict=False))
        elif fmt in ("epoch_ms", "epoch_s"):
            digits = (
                pl.when(expr.str.contains(r"^[0-9]{1,16}$")).then(expr).cast(pl.Int64, strict=False)
            )
            factor = 1000 if fmt == "epoch_ms" else 1_000_000
            aware.append((digits * factor).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
        elif "%z" in fmt or "%#z" in fmt or "%:z" in fmt:
            aware.append(expr.str.strptime(pl.Datetime("us", "UTC"), fmt, strict=False))
        else:
            naive.append(expr.str.strptime(pl.Datetime("us"), fmt, strict=False))
    instant_aware = pl.coalesce(aware) if aware else pl.lit(None, dtype=pl.Datetime("us", "UTC"))
    wall = pl.coalesce(naive) if naive else pl.lit(None, dtype=pl.Datetime("us"))
    placed = wall.dt.replace_time_zone(
        zone, ambiguous="null", non_existent="null"
    ).dt.convert_time_zone("UTC")
    instant = pl.coalesce([instant_aware, placed]).dt.replace_time_zone(None)
    unplaceable = instant_aware.is_null() & wall.is_not_null() & placed.is_null()
    return instant, unplaceable


def _price_micros(unit: str, sign: str) -> Callable[[str], int | None]:
    scale = MONEY_UNITS[unit]
    factor = -1 if sign == "negative_is_charge" else 1

    def convert(text: str) -> int | None:
        try:
            value = Decimal(text.strip())
        except InvalidOperation:
            return None
        # Finite, at most 18 integral digits and 60 significant ones: the product below is
        # then exact in a 100-digit context and fits a bigint.
        if not value.is_finite() or value.adjusted() > 18 or len(value.as_tuple().digits) > 60:
            return None
        with localcontext() as ctx:
            ctx.prec = 100
            micros = value * scale * factor
        if micros != micros.to_integral_value() or abs(micros) >= 2**63:
            return None
        return int(micros)

    return convert


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CarrierParse:
    """Parsed records of one file, its quarantine rows and the accounting."""

    records: pl.DataFrame
    quarantine: pl.DataFrame
    rows_in: int
    load_id: str
    source: str

    @property
    def accounted(self) -> bool:
        row_scope = self.quarantine.filter(pl.col("scope") == "row").height
        return self.rows_in == self.records.height + row_scope


def _unreadable_rule() -> Rule:
    """The row the reader could not parse (``unreadable`` holds why)."""
    return Rule(
        "record_unreadable",
        pl.concat_str(pl.lit("record could not be read: "), pl.col("unreadable")),
        pl.col("unreadable").is_not_null(),
    )


def _currency_rule(shown: str, checked: str, *, when: pl.Expr | None = None) -> Rule:
    """``checked`` (the upper-cased code) must be three letters; the reason shows ``shown``
    as the file had it. With ``when``, only rows where it holds are checked."""
    bad = ~pl.col(checked).fill_null("").str.contains(r"^[A-Z]{3}$")
    return Rule(
        "currency_invalid",
        pl.concat_str(
            pl.lit("currency "), pl.col(shown).fill_null("(missing)"), pl.lit(" is not ISO 4217")
        ),
        bad if when is None else when & bad,
    )


def parse_carrier_records(
    raw: pl.DataFrame,
    layout: Layout,
    *,
    source_file: str,
    load_id: str,
    loaded_at: datetime,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``read_carrier_file`` output -> (``carrier_records`` rows, quarantine rows)."""
    source = layout.source
    statuses = list(layout.status_map)
    classes = [layout.status_map[s] for s in statuses]
    fields = {c: _field(layout, c) for c in CANONICAL_FIELDS}
    timestamps: dict[str, tuple[pl.Expr, pl.Expr]] = {}
    for canonical in _TIMESTAMP_FIELDS:
        spec = layout.columns.get(canonical)
        formats = (spec.formats if spec and spec.formats else None) or layout.timestamp_formats
        zone = (spec.zone if spec and spec.zone else None) or layout.zone
        timestamps[canonical] = _timestamp(fields[canonical], formats, zone)
    to_digits = fields["to_address"].str.replace_all(r"[\s.\-()]", "")
    if layout.add_plus:
        to_digits = (
            pl.when(to_digits.str.contains(r"^[0-9]+$"))
            .then(pl.lit("+") + to_digits)
            .otherwise(to_digits)
        )
    currency = fields["price_currency"]
    if layout.currency:
        currency = pl.coalesce([currency, pl.lit(layout.currency)])
    frame = raw.with_columns(
        fields["carrier_message_id"].alias("carrier_message_id"),
        fields["status"].alias("status"),
        fields["status"]
        .str.strip_chars()
        .str.to_lowercase()
        .replace_strict(statuses, classes, default=None, return_dtype=pl.String)
        .alias("status_class"),
        to_digits.alias("to_address"),
        fields["sent_at"].alias("_sent_raw"),
        fields["updated_at"].alias("_updated_raw"),
        timestamps["sent_at"][0].alias("sent_at_utc"),
        timestamps["sent_at"][1].alias("_sent_unplaceable"),
        timestamps["updated_at"][0].alias("_updated_utc"),
        timestamps["updated_at"][1].alias("_updated_unplaceable"),
        fields["price"].alias("_price_raw"),
        currency.str.to_uppercase().alias("price_currency"),
        fields["num_segments"].alias("_segments_raw"),
        fields["part_index"].alias("_part_raw"),
        fields["parts_total"].alias("_parts_raw"),
        fields["final"].str.to_lowercase().alias("_final_raw"),
        fields["body"].alias("_body"),
        *(
            fields[c].alias(c)
            for c in ("account_ref", "from_address", "direction", "error_code", "sender_reference")
        ),
    ).with_columns(
        _map_distinct(
            "_price_raw", _price_micros(layout.money_unit, layout.money_sign), pl.Int64()
        ).alias("price_micros"),
        pl.col("_segments_raw").cast(pl.Int32, strict=False).alias("num_segments"),
        pl.col("_part_raw").cast(pl.Int32, strict=False).fill_null(1).alias("part_index"),
        pl.col("_parts_raw").cast(pl.Int32, strict=False).fill_null(1).alias("parts_total"),
    )
    price_bad = pl.col("_price_raw").is_not_null() & pl.col("price_micros").is_null()
    if not layout.pending_when_null:
        price_bad = price_bad | pl.col("_price_raw").is_null()

    def bad_ts(raw_col: str, value: str) -> pl.Expr:
        return pl.col(raw_col).is_not_null() & pl.col(value).is_null()

    rules = [
        _unreadable_rule(),
        Rule("id_missing", "no carrier message id", pl.col("carrier_message_id").is_null()),
        Rule(
            "status_unknown",
            pl.concat_str(
                pl.lit("status "),
                pl.col("status").fill_null("(missing)"),
                pl.lit(f" is not in layout {layout.name}'s status_map"),
            ),
            pl.col("status_class").is_null(),
        ),
        Rule(
            "to_address_invalid",
            pl.concat_str(
                pl.lit("recipient "),
                pl.col("to_address").fill_null("(missing)"),
                pl.lit(" is not E.164"),
            ),
            ~pl.col("to_address").fill_null("").str.contains(r"^\+[1-9][0-9]{6,14}$"),
        ),
        Rule("timestamp_missing", "no send time", pl.col("_sent_raw").is_null()),
        Rule(
            "timestamp_ambiguous",
            pl.lit("wall time is ambiguous or does not exist in the layout's zone (DST)"),
            pl.col("_sent_unplaceable") | pl.col("_updated_unplaceable"),
        ),
        Rule(
            "timestamp_invalid",
            pl.concat_str(
                pl.lit("unreadable time "),
                pl.when(bad_ts("_sent_raw", "sent_at_utc"))
                .then(pl.col("_sent_raw"))
                .otherwise(pl.col("_updated_raw")),
                pl.lit(f" (formats {', '.join(layout.timestamp_formats)})"),
            ),
            bad_ts("_sent_raw", "sent_at_utc") | bad_ts("_updated_raw", "_updated_utc"),
        ),
        Rule(
            "price_invalid",
            pl.concat_str(
                pl.lit("price "),
                pl.col("_price_raw").fill_null("(missing)"),
                pl.lit(f" is not an exact number of {layout.money_unit} micro-units"),
            ),
            price_bad,
        ),
        _currency_rule("price_currency", "price_currency", when=pl.col("_price_raw").is_not_null()),
        Rule(
            "segments_invalid",
            pl.concat_str(
                pl.lit("segment count "), pl.col("_segments_raw"), pl.lit(" is not a count")
            ),
            pl.col("_segments_raw").is_not_null()
            & (pl.col("num_segments").is_null() | (pl.col("num_segments") < 0)),
        ),
        Rule(
            "part_invalid",
            "part index/total are not 1 <= index <= total",
            (
                pl.col("_part_raw").is_not_null()
                & pl.col("_part_raw").cast(pl.Int32, strict=False).is_null()
            )
            | (
                pl.col("_parts_raw").is_not_null()
                & pl.col("_parts_raw").cast(pl.Int32, strict=False).is_null()
            )
            | (pl.col("part_index") < 1)
            | (pl.col("part_index") > pl.col("parts_total")),
        ),
    ]
    raw_cols = [c for c in raw.columns if c not in ("source_row", "unreadable")]
    accepted, quarantine = split_rows(
        frame, rules, source=source, key="carrier_message_id", raw_columns=raw_cols
    )
    final = pl.col("price_micros").is_not_null()
    if "final" in layout.columns or "final" in layout.constants:
        final = final & pl.col("_final_raw").is_in(["true", "1", "yes"])
    records = accepted.with_columns(
        pl.lit(layout.carrier).alias("carrier"),
        final.alias("price_final"),
        pl.coalesce(["_updated_utc", "sent_at_utc"]).alias("updated_at_utc"),
        _map_distinct("_body", _sha256, pl.String()).alias("body_sha256"),
        pl.lit(source_file).alias("source_file"),
        pl.lit(loaded_at).cast(pl.Datetime("us")).alias("loaded_at_utc"),
        pl.lit(load_id).alias("load_id"),
    )
    records, superseded = _latest_versions(records, source=source, raw_columns=raw_cols)
    records = records.select([pl.col(c).cast(t) for c, t in CARRIER_RECORD_SCHEMA.items()]).sort(
        "source_row"
    )
    quarantine = pl.concat([quarantine, superseded]).sort("source_row")
    return records, quarantine


def _version(suffix: str = "") -> list[pl.Expr]:
    """Version order of one carrier message: status rank, price_final, updated_at_utc."""
    ranks = list(_STATUS_RANK)
    return [
        pl.col(f"status_class{suffix}").replace_strict(
            ranks, [_STATUS_RANK[r] for r in ranks], return_dtype=pl.Int8
        ),
        pl.col(f"price_final{suffix}").cast(pl.Int8),
        pl.col(f"updated_at_utc{suffix}"),
    ]


def _latest_versions(
    records: pl.DataFrame, *, source: str, raw_columns: Sequence[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per natural key keep the latest version; quarantine the rest (or a tie that differs)."""
    if records.height == 0:
        return records, empty_quarantine()
    rank, final, _updated = _version()
    tagged = records.with_columns(
        rank.alias("_rank"),
        final.alias("_final"),
        pl.struct(_RECORD_CONTENT).hash().alias("_content"),
    ).with_columns((pl.col("_rank") == pl.col("_rank").max().over(_RECORD_KEY)).alias("_top_rank"))
    tagged = tagged.with_columns(
        (
            pl.col("_top_rank")
            & (
                pl.col("_final")
                == pl.col("_final").filter(pl.col("_top_rank")).max().over(_RECORD_KEY)
            )
        ).alias("_top_final")
    )
    tagged = tagged.with_columns(
        (
            pl.col("_top_final")
            & (
                pl.col("updated_at_utc")
                == pl.col("updated_at_utc").filter(pl.col("_top_final")).max().over(_RECORD_KEY)
            )
        ).alias("_latest")
    ).with_columns(
        (pl.col("_content").filter(pl.col("_latest")).n_unique().over(_RECORD_KEY) > 1).alias(
            "_conflict"
        ),
        (
            pl.col("source_row")
            == pl.col("source_row").filter(pl.col("_latest")).min().over(_RECORD_KEY)
        ).alias("_kept"),
    )
    rules = [
        Rule(
            "carrier_record_conflict",
            pl.lit("rows of this carrier message tie on its latest version with different content"),
            pl.col("_latest") & pl.col("_conflict"),
        ),
        Rule(
            "carrier_record_superseded",
            pl.concat_str(
                pl.lit("a later version of this carrier message is row "),
                pl.col("source_row")
                .filter(pl.col("_kept"))
                .first()
                .over(_RECORD_KEY)
                .cast(pl.String),
            ),
            ~pl.col("_kept"),
        ),
    ]
    kept, quarantine = split_rows(
        tagged, rules, source=source, key="carrier_message_id", raw_columns=raw_columns
    )
    return kept, quarantine


def file_load_id(layout: Layout, data: bytes) -> str:
    """Deterministic id of one file's load: the same bytes under the same layout, the same id."""
    digest = hashlib.sha256(layout.name.encode() + b"\0" + data).hexdigest()
    return f"carrier:{layout.carrier}:{digest[:20]}"


def parse_carrier_file(
    data: bytes, layout: Layout, *, source_file: str, loaded_at: datetime
) -> CarrierParse:
    """Read and parse one carrier file (bytes as received, gzip or not)."""
    raw = read_carrier_file(data, layout)
    load_id = file_load_id(layout, data)
    records, quarantine = parse_carrier_records(
        raw, layout, source_file=source_file, load_id=load_id, loaded_at=loaded_at
    )
    return CarrierParse(records, quarantine, raw.height, load_id, layout.source)


# --------------------------------------------------------------------------------------------
# Loads: stage, delete by natural key, insert (in the caller's transaction)
# --------------------------------------------------------------------------------------------


def _merge(
    conn: Connection,
    table: str,
    frame: pl.DataFrame,
    *,
    key: Sequence[str],
    content: Sequence[str],
    schema: Mapping[str, pl.DataType],
    newer: Callable[[], pl.Expr],
) -> dict[str, int]:
    """Replace rows of ``table`` by ``frame`` where ``newer()`` says so; insert new keys.

    A stored row with identical ``content`` is never touched (a reload changes nothing).
    """
    counts = {"inserted": 0, "replaced": 0, "unchanged": 0, "kept_newer": 0}
    if frame.height == 0:
        return counts
    stage = f"_stage_{table}"
    conn.exec_driver_sql(f"drop table if exists {stage}")
    conn.exec_driver_sql(f"create temp table {stage} as select * from {table} where 1 = 0")
    match = " and ".join(f"s.{k} = t.{k}" for k in key)
    try:
        write_frame(conn, stage, frame.select(key))
        wanted = list(dict.fromkeys([*key, *content]))
        existing = read_frame(
            conn,
            f"select {', '.join(f't.{c}' for c in wanted)} from {table} t "
            f"where exists (select 1 from {stage} s where {match})",
            schema={c: schema[c] for c in wanted},
        )
        joined = frame.join(
            existing.with_columns(pl.lit(True).alias("_stored")),
            on=list(key),
            how="left",
            suffix="_old",
            nulls_equal=True,
        )
        stored = pl.col("_stored").fill_null(False)
        same = pl.all_horizontal(
            [pl.col(c).eq_missing(pl.col(f"{c}_old")) for c in content if c not in key]
        )
        joined = joined.with_columns(
            pl.when(~stored)
            .then(pl.lit("inserted"))
            .when(same)
            .then(pl.lit("unchanged"))
            .when(newer())
            .then(pl.lit("replaced"))
            .otherwise(pl.lit("kept_newer"))
            .alias("_action")
        )
        for action, n in joined.group_by("_action").len().iter_rows():
            counts[action] = n
        winners = joined.filter(pl.col("_action").is_in(["inserted", "replaced"])).select(
            frame.columns
        )
        if winners.height:
            conn.exec_driver_sql(f"delete from {stage}")
            write_frame(conn, stage, winners)
            conn.exec_driver_sql(
                f"delete from {table} t where exists (select 1 from {stage} s where {match})"
            )
            columns = ", ".join(frame.columns)
            conn.exec_driver_sql(f"insert into {table} ({columns}) select {columns} from {stage}")
    finally:
        conn.exec_driver_sql(f"drop table if exists {stage}")
    return counts


def _write_quarantine(
    conn: Connection, quarantine: pl.DataFrame, *, source: str, load_id: str
) -> None:
    conn.execute(
        sa.text("delete from quarantine where run_id = :r and source = :s"),
        {"r": load_id, "s": source},
    )
    write_frame(
        conn,
        "quarantine",
        quarantine.cast(QUARANTINE_SCHEMA).with_columns(pl.lit(load_id).alias("run_id")),  # type: ignore[arg-type]
    )


def load_carrier_records(conn: Connection, parsed: CarrierParse) -> dict[str, int]:
    """Merge one parsed file into ``carrier_records`` and its quarantine rows into ``quarantine``.

    Returns ``rows_in, quarantined, inserted, replaced, unchanged, kept_newer``.
    """
    _write_quarantine(conn, parsed.quarantine, source=parsed.source, load_id=parsed.load_id)

    def newer() -> pl.Expr:
        rank, final, updated = _version()
        rank_o, final_o, updated_o = _version(suffix="_old")
        return (rank > rank_o) | (
            (rank == rank_o) & ((final > final_o) | ((final == final_o) & (updated > updated_o)))
        )

    counts = _merge(
        conn,
        "carrier_records",
        parsed.records,
        key=_RECORD_KEY,
        content=_RECORD_CONTENT,
        schema=CARRIER_RECORD_SCHEMA,
        newer=newer,
    )
    return {"rows_in": parsed.rows_in, "quarantined": parsed.quarantine.height, **counts}


def load_carrier_file(
    engine: Engine, path: str | Path, layout: str | Path | Layout, *, now: datetime
) -> dict[str, int]:
    """Read, parse and load one carrier file in one transaction (``now``: naive UTC)."""
    chosen = layout if isinstance(layout, Layout) else load_layout(layout)
    data = Path(path).read_bytes()
    parsed = parse_carrier_file(data, chosen, source_file=Path(path).name, loaded_at=now)
    with engine.begin() as conn:
        return load_carrier_records(conn, parsed)


# --------------------------------------------------------------------------------------------
# Carrier invoices
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceParse:
    lines: pl.DataFrame
    quarantine: pl.DataFrame
    rows_in: int
    load_id: str
    source: str


_INVOICE_RAW = [
    "account_ref",
    "period_start",
    "period_end",
    "category",
    "count",
    "count_unit",
    "amount",
    "currency",
]


def _parse_invoice_raw(
    raw: pl.DataFrame,
    *,
    carrier: str,
    source_file: str,
    load_id: str,
    loaded_at: datetime,
    amount_sign: int,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    source = f"carrier_invoices:{carrier}"

    def amount(text: str) -> int | None:
        converted = _price_micros("decimal_major", "positive_is_charge")(text)
        return None if converted is None else converted * amount_sign

    frame = raw.with_columns([_clean(pl.col(c)).alias(c) for c in _INVOICE_RAW]).with_columns(
        pl.col("period_start").str.strptime(pl.Date, "%Y-%m-%d", strict=False).alias("_start"),
        pl.col("period_end").str.strptime(pl.Date, "%Y-%m-%d", strict=False).alias("_end"),
        pl.when(pl.col("count").str.contains(r"^[0-9]+$"))
        .then(pl.col("count"))
        .cast(pl.Int64, strict=False)
        .alias("_count"),
        _map_distinct("amount", amount, pl.Int64()).alias("_amount"),
        pl.col("currency").str.to_uppercase().alias("_currency"),
    )
    rules = [
        _unreadable_rule(),
        Rule(
            "period_invalid",
            "period start/end missing, not YYYY-MM-DD, or end before start",
            pl.col("_start").is_null()
            | pl.col("_end").is_null()
            | (pl.col("_end") < pl.col("_start")),
        ),
        Rule("category_missing", "no category", pl.col("category").is_null()),
        Rule(
            "count_invalid",
            pl.concat_str(pl.lit("count "), pl.col("count"), pl.lit(" is not a whole number")),
            pl.col("count").is_not_null() & pl.col("_count").is_null(),
        ),
        Rule(
            "amount_invalid",
            pl.concat_str(
                pl.lit("amount "),
                pl.col("amount").fill_null("(missing)"),
                pl.lit(" is not an exact decimal of micro-units"),
            ),
            pl.col("_amount").is_null(),
        ),
        _currency_rule("currency", "_currency"),
    ]
    raw_cols = [c for c in raw.columns if c not in ("source_row", "unreadable")]
    accepted, quarantine = split_rows(
        frame, rules, source=source, key="category", raw_columns=raw_cols
    )
    inv_key = ["_account", "_start", "_end", "category"]
    lines = accepted.with_columns(pl.col("account_ref").fill_null("").alias("_account"))
    lines = lines.with_columns(
        pl.struct([*inv_key, "_count", "count_unit", "_amount", "_currency"])
        .hash()
        .alias("_content")
    ).with_columns(
        (pl.col("_content").n_unique().over(inv_key) > 1).alias("_conflict"),
        (pl.col("source_row") == pl.col("source_row").min().over(inv_key)).alias("_first"),
    )
    dup_rules = [
        Rule(
            "invoice_line_conflict",
            "another line of this file has the same carrier, account, period and category "
            "with a different count or amount",
            pl.col("_conflict"),
        ),
        Rule(
            "invoice_line_duplicate",
            "an identical line comes earlier in this file",
            ~pl.col("_first"),
        ),
    ]
    lines, dups = split_rows(lines, dup_rules, source=source, key="category", raw_columns=raw_cols)
    lines = lines.select(
        pl.lit(carrier).alias("carrier"),
        pl.col("_account").alias("account_ref"),
        pl.col("_start").alias("period_start"),
        pl.col("_end").alias("period_end"),
        pl.col("category"),
        pl.col("_count").alias("count"),
        pl.col("count_unit"),
        pl.col("_amount").alias("amount_micros"),
        pl.col("_currency").alias("currency"),
        pl.lit(source_file).alias("source_file"),
        pl.col("source_row"),
        pl.lit(loaded_at).cast(pl.Datetime("us")).alias("loaded_at_utc"),
        pl.lit(load_id).alias("load_id"),
    )
    lines = lines.select([pl.col(c).cast(t) for c, t in INVOICE_SCHEMA.items()]).sort("source_row")
    return lines, pl.concat([quarantine, dups]).sort("source_row")


def _raw_invoice_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    schema = {"source_row": pl.Int32(), "unreadable": pl.String()}
    schema |= {c: pl.String() for c in _INVOICE_RAW}
    return pl.DataFrame(rows, schema=schema, orient="row")


def parse_twilio_usage_records(
    data: bytes, *, source_file: str, loaded_at: datetime, carrier: str = "twilio"
) -> InvoiceParse:
    """Twilio ``/Usage/Records/Monthly`` (or Daily, ...) JSON: ``{"usage_records": [...]}`` or a
    list; ``price`` is a positive decimal string in ``price_unit`` (lower-case in Twilio's
    answers), ``count`` a string, ``start_date``/``end_date`` ``YYYY-MM-DD``.
    """
    load_id = f"carrier_invoice:{carrier}:{hashlib.sha256(data).hexdigest()[:20]}"
    rows: list[dict[str, Any]] = []
    try:
        document = _json_loads(_decompress(data).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        rows.append({"source_row": 1, "unreadable": f"not JSON: {exc}"})
        document = []
    if isinstance(document, dict):
        document = document.get("usage_records", [document])
    for number, item in enumerate(document if isinstance(document, list) else [document], start=1):
        if not isinstance(item, dict):
            rows.append({"source_row": number, "unreadable": "not a JSON object"})
            continue
        rows.append(
            {
                "source_row": number,
                "unreadable": None,
                "account_ref": _text(item.get("account_sid")),
                "period_start": _text(item.get("start_date")),
                "period_end": _text(item.get("end_date")),
                "category": _text(item.get("category")),
                "count": _text(item.get("count")),
                "count_unit": _text(item.get("count_unit")),
                "amount": _text(item.get("price")),
                "currency": _text(item.get("price_unit")),
            }
        )
    raw = _raw_invoice_frame(rows)
    lines, quarantine = _parse_invoice_raw(
        raw,
        carrier=carrier,
        source_file=source_file,
        load_id=load_id,
        loaded_at=loaded_at,
        amount_sign=1,
    )
    return InvoiceParse(lines, quarantine, raw.height, load_id, f"carrier_invoices:{carrier}")


def parse_invoice_csv(
    data: bytes, *, carrier: str, source_file: str, loaded_at: datetime, encoding: str = "utf-8"
) -> InvoiceParse:
    """The generic invoice CSV: ``period_start,period_end,category,count,amount,currency``
    (optional ``account_ref``, ``count_unit``); amount in major units, positive = charge.
    """
    load_id = f"carrier_invoice:{carrier}:{hashlib.sha256(data).hexdigest()[:20]}"
    text = _decompress(data).decode(encoding, errors="replace").lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    names = [h.strip().lower() for h in next(reader, None) or []]
    rows: list[dict[str, Any]] = []
    number = 0
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        number += 1
        row: dict[str, Any] = {"source_row": number, "unreadable": None}
        if "\ufffd" in "".join(cells):
            row["unreadable"] = f"not valid {encoding}"
        elif len(cells) != len(names):
            row["unreadable"] = f"{len(cells)} cells for {len(names)} columns"
        else:
            values = dict(zip(names, cells, strict=True))
            row |= {c: values.get(c) for c in _INVOICE_RAW}
        rows.append(row)
    raw = _raw_invoice_frame(rows)
    lines, quarantine = _parse_invoice_raw(
        raw,
        carrier=carrier,
        source_file=source_file,
        load_id=load_id,
        loaded_at=loaded_at,
        amount_sign=1,
    )
    return InvoiceParse(lines, quarantine, raw.height, load_id, f"carrier_invoices:{carrier}")


def load_carrier_invoices(conn: Connection, parsed: InvoiceParse) -> dict[str, int]:
    """Merge invoice lines by (carrier, account, period, category): a restated line replaces
    the stored one, an identical one changes nothing."""
    _write_quarantine(conn, parsed.quarantine, source=parsed.source, load_id=parsed.load_id)
    counts = _merge(
        conn,
        "carrier_invoices",
        parsed.lines,
        key=_INVOICE_KEY,
        content=_INVOICE_CONTENT,
        schema=INVOICE_SCHEMA,
        newer=lambda: pl.lit(True),
    )
    return {"rows_in": parsed.rows_in, "quarantined": parsed.quarantine.height, **counts}
