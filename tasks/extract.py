"""Extract: read the canonical inputs from CSV, Parquet or any SQLAlchemy URL.

Each source is renamed onto the canonical column names through its ``columns`` mapping, every
canonical column is turned into text (normalize parses it, whatever the source's types were),
and a ``source_row`` column numbers the rows so each one can be accounted for. All SQL sources
on one URL are read inside one ``REPEATABLE READ`` transaction (PostgreSQL), so a run sees one
consistent snapshot even while the source is being written to.

CSV files are decoded in Python with the source's ``encoding`` (polars reads only UTF-8), a
UTF-8 BOM is skipped and lines ended by CR alone are read as lines. A byte the codec cannot
decode never becomes U+FFFD: it is decoded to the private-use sentinel ``U+10FF00 + byte``
(see :data:`SENTINEL_BASE`), and the source is named in :attr:`Extracted.decode_errors` so
normalize quarantines the rows holding a sentinel (``encoding_invalid``) and writes the bytes
back as ``\\xNN`` in ``raw_values``. A NUL character (from any kind of source) is treated as
such a byte: it is no text, and PostgreSQL cannot store it (one NUL in an id failed the whole
run's warehouse write).
"""

from __future__ import annotations

import codecs
import logging
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import sqlalchemy as sa
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.errors import SourceError, TransientError, is_transient, retry_transient
from tasks.settings import CANONICAL_COLUMNS, REQUIRED_COLUMNS, SourceSpec, SourcesSettings

__all__ = [
    "INPUTS",
    "SENTINEL_BASE",
    "SENTINEL_PATTERN",
    "Extracted",
    "canonicalize",
    "decode_text",
    "extract_sources",
    "extract_task",
    "hex_escape_sentinels",
]

log = logging.getLogger(__name__)

INPUTS = ("customers", "invoices", "consent_events", "contact_history")

SENTINEL_BASE = 0x10FF00
"""An undecodable byte ``b`` is read as ``chr(SENTINEL_BASE + b)`` (plane 16 private use)."""
SENTINEL_PATTERN = "[\U0010ff00-\U0010ffff]"
"""Regex (polars / re) matching any sentinel character."""
_ERROR_HANDLER = "reminders-sentinel"


def _sentinel(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    return "".join(chr(SENTINEL_BASE + b) for b in bad), exc.end


codecs.register_error(_ERROR_HANDLER, _sentinel)


def decode_text(data: bytes, encoding: str) -> tuple[str, bool]:
    """Decode ``data``: (text, True if some bytes were undecodable and became sentinels).

    A UTF-8 byte order mark is dropped when the codec is UTF-8.
    """
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"
    try:
        return data.decode(encoding), False
    except UnicodeDecodeError:
        return data.decode(encoding, errors=_ERROR_HANDLER), True


def hex_escape_sentinels(expr: pl.Expr, *, json: bool = False) -> pl.Expr:
    """Replace every sentinel character in a string expression by ``\\xNN`` of its byte.

    ``json=True`` is for JSON text: the backslash is itself escaped, so the decoded JSON value
    holds ``\\xNN``.
    """
    slash = "\\\\" if json else "\\"
    return expr.str.replace_many(
        [chr(SENTINEL_BASE + b) for b in range(256)], [f"{slash}x{b:02x}" for b in range(256)]
    )


@dataclass(frozen=True)
class Extracted:
    """One run's snapshot of every input, canonical names, text columns, ``source_row`` added.

    ``decode_errors`` maps each csv source whose file held undecodable bytes to its encoding.
    """

    frames: dict[str, pl.DataFrame]
    decode_errors: dict[str, str] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        return {name: frame.height for name, frame in self.frames.items()}


def _as_text(column: pl.Series) -> pl.Series:
    dtype = column.dtype
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            column = column.dt.convert_time_zone("UTC")
        return column.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    if dtype == pl.Date:
        return column.dt.strftime("%Y-%m-%d")
    if dtype == pl.String:
        return column
    return column.cast(pl.String)


def _nul_as_sentinel(frame: pl.DataFrame) -> tuple[pl.DataFrame, bool]:
    """``frame`` with every NUL in its text columns replaced by the sentinel of byte 0x00,
    and whether there was one."""
    text = [c for c, t in frame.schema.items() if t == pl.String]
    if not text:
        return frame, False
    found = frame.select(
        pl.any_horizontal(pl.col(c).str.contains("\x00", literal=True).any() for c in text)
    ).item()
    if not found:
        return frame, False
    nul = chr(SENTINEL_BASE)
    return frame.with_columns(
        pl.col(c).str.replace_all("\x00", nul, literal=True) for c in text
    ), True


def canonicalize(raw: pl.DataFrame, name: str, mapping: dict[str, str]) -> pl.DataFrame:
    """Rename ``raw`` onto the canonical columns of input ``name`` and turn them into text.

    Missing required columns raise :class:`SourceError` naming the source column looked for;
    optional canonical columns that are absent are added as nulls; extra columns are kept,
    except one whose name differs from a column looked for only by case or surrounding
    spaces (``' paid_at'``), which raises :class:`SourceError` too.
    """
    canonical = CANONICAL_COLUMNS[name]
    unknown = set(mapping) - set(canonical)
    if unknown:
        raise SourceError(f"{name}: mapping names unknown canonical columns {sorted(unknown)}")
    rename = {mapping.get(col, col): col for col in canonical if mapping.get(col, col) in raw}
    missing = [
        f"{col} (looked for column {mapping.get(col, col)!r})"
        for col in REQUIRED_COLUMNS[name]
        if mapping.get(col, col) not in raw.columns
    ]
    if missing:
        raise SourceError(f"{name}: required columns missing: {', '.join(missing)}")
    looked_for = {mapping.get(col, col): col for col in canonical}
    for column in raw.columns:
        near = column.strip().lower()
        for looked, col in looked_for.items():
            if column != looked and near == looked.strip().lower() and looked not in raw.columns:
                # an optional column under a near-miss header would be silently absent (a
                # 'paid_at ' header: every invoice unpaid); refuse rather than guess
                raise SourceError(
                    f"{name}: column {column!r} looks like {col} (looked for {looked!r}); "
                    "fix the header or map it in columns"
                )
    frame = raw.rename(rename)
    frame = frame.with_columns(
        [_as_text(frame[col]).alias(col) for col in canonical if col in frame.columns]
        + [pl.lit(None, pl.String).alias(col) for col in canonical if col not in frame.columns]
    )
    extras = [c for c in frame.columns if c not in canonical]
    return frame.select(
        pl.int_range(0, pl.len(), dtype=pl.Int32).alias("source_row"), *canonical, *extras
    )


def _read_file(spec: SourceSpec, name: str) -> tuple[pl.DataFrame, bool]:
    """(frame, True if the csv held bytes its encoding cannot decode)."""
    assert spec.path is not None
    path = Path(spec.path)
    if not path.exists():
        raise SourceError(f"{name}: file {path} does not exist")
    if spec.kind == "csv":
        data = path.read_bytes()
        text, bad = decode_text(data, spec.encoding)
        cr_only = "\r" in text and "\n" not in text
        if cr_only:
            # lines ended by CR alone (old Mac exports): polars would read one header line
            text = text.replace("\r", "\n")
        if not text or text.isspace():
            return pl.DataFrame(), bad
        if not bad and not cr_only and codecs.lookup(spec.encoding).name == "utf-8":
            # Valid UTF-8: its bytes (without the BOM decode_text drops) are what encoding the
            # text would give; no second copy of the file.
            payload = data[len(codecs.BOM_UTF8) :] if data.startswith(codecs.BOM_UTF8) else data
        else:
            payload = text.encode("utf-8")
        del text
        try:
            frame = pl.read_csv(payload, infer_schema=False)
        except pl.exceptions.PolarsError as exc:
            kind = type(exc).__name__
            raise SourceError(f"{name}: {path} is not a readable CSV: {kind}") from None
        return frame, bad
    return pl.read_parquet(path), False


def _select(spec: SourceSpec) -> sa.Executable:
    if spec.query is not None:
        return sa.text(spec.query)
    assert spec.table is not None
    schema, _, table = spec.table.rpartition(".")
    return sa.select(sa.text("*")).select_from(sa.table(table, schema=schema or None))


def _read_sql(conn: sa.Connection, spec: SourceSpec) -> pl.DataFrame:
    result = conn.execute(_select(spec))
    names = list(result.keys())
    rows = result.fetchall()
    if not rows:
        return pl.DataFrame({n: [] for n in names}, schema=dict.fromkeys(names, pl.String))
    return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)


def extract_sources(sources: SourcesSettings) -> Extracted:
    """Read every configured input once; SQL inputs sharing a URL share one snapshot."""
    specs: dict[str, SourceSpec] = {name: getattr(sources, name) for name in INPUTS}
    raw: dict[str, pl.DataFrame] = {}
    decode_errors: dict[str, str] = {}
    by_url: dict[str, list[str]] = {}
    for name, spec in specs.items():
        if spec.kind == "sql":
            url = spec.url or sources.sql_url
            if url is None:
                raise SourceError(f"{name}: a sql source needs url or sources.sql_url")
            by_url.setdefault(url.get_secret_value(), []).append(name)
        elif spec.optional and spec.path is not None and not Path(spec.path).exists():
            log.info("%s: optional source %s absent, using no rows", name, spec.path)
            raw[name] = pl.DataFrame(schema=dict.fromkeys(REQUIRED_COLUMNS[name], pl.String))
        else:
            raw[name], bad = _read_file(spec, name)
            if bad:
                decode_errors[name] = spec.encoding
                log.warning("%s: undecodable bytes for encoding %s", name, spec.encoding)
    for url, names in by_url.items():
        engine = sa.create_engine(url, hide_parameters=True)
        try:
            options = (
                {"isolation_level": "REPEATABLE READ"}
                if engine.dialect.name == "postgresql"
                else {}
            )
            with engine.connect().execution_options(**options) as conn, conn.begin():
                for name in names:
                    try:
                        raw[name] = _read_sql(conn, specs[name])
                    except sa.exc.SQLAlchemyError as exc:
                        if is_transient(exc):
                            raise TransientError(
                                f"{name}: SQL source unavailable: {type(exc).__name__}"
                            ) from None
                        raise SourceError(
                            f"{name}: cannot read from the SQL source: {type(exc).__name__}"
                        ) from None
        finally:
            engine.dispose()
    for name in INPUTS:
        raw[name], nul = _nul_as_sentinel(raw[name])
        if nul and name not in decode_errors:
            decode_errors[name] = specs[name].encoding if specs[name].kind == "csv" else "text"
            log.warning("%s: NUL characters, read as undecodable bytes", name)
    frames = {name: canonicalize(raw[name], name, specs[name].columns) for name in INPUTS}
    for name, frame in frames.items():
        log.info("extracted %s: %d rows", name, frame.height)
    return Extracted(frames, decode_errors)


@task(
    name="extract",
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=retry_transient,
    cache_policy=NO_CACHE,
)
def extract_task(sources: SourcesSettings) -> Extracted:
    return extract_sources(sources)
