"""Extract: read the canonical inputs from CSV, Parquet or any SQLAlchemy URL.

Each source is renamed onto the canonical column names through its ``columns`` mapping, every
canonical column is turned into text (normalize parses it, whatever the source's types were),
and a ``source_row`` column numbers the rows so each one can be accounted for. All SQL sources
on one URL are read inside one ``REPEATABLE READ`` transaction (PostgreSQL), so a run sees one
consistent snapshot even while the source is being written to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import sqlalchemy as sa
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.errors import SourceError
from tasks.settings import CANONICAL_COLUMNS, REQUIRED_COLUMNS, SourceSpec, SourcesSettings

__all__ = ["INPUTS", "Extracted", "canonicalize", "extract_sources", "extract_task"]

log = logging.getLogger(__name__)

INPUTS = ("customers", "invoices", "consent_events", "contact_history")


@dataclass(frozen=True)
class Extracted:
    """One run's snapshot of every input, canonical names, text columns, ``source_row`` added."""

    frames: dict[str, pl.DataFrame]

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


def canonicalize(raw: pl.DataFrame, name: str, mapping: dict[str, str]) -> pl.DataFrame:
    """Rename ``raw`` onto the canonical columns of input ``name`` and turn them into text.

    Missing required columns raise :class:`SourceError` naming the source column looked for;
    optional canonical columns that are absent are added as nulls; extra columns are kept.
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
    frame = raw.rename(rename)
    frame = frame.with_columns(
        [_as_text(frame[col]).alias(col) for col in canonical if col in frame.columns]
        + [pl.lit(None, pl.String).alias(col) for col in canonical if col not in frame.columns]
    )
    extras = [c for c in frame.columns if c not in canonical]
    return frame.select(
        pl.int_range(0, pl.len(), dtype=pl.Int32).alias("source_row"), *canonical, *extras
    )


def _read_file(spec: SourceSpec, name: str) -> pl.DataFrame:
    assert spec.path is not None
    path = Path(spec.path)
    if not path.exists():
        raise SourceError(f"{name}: file {path} does not exist")
    if spec.kind == "csv":
        return pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")
    return pl.read_parquet(path)


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
            raw[name] = _read_file(spec, name)
    for url, names in by_url.items():
        engine = sa.create_engine(url)
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
                        raise SourceError(
                            f"{name}: cannot read from the SQL source: {type(exc).__name__}"
                        ) from None
        finally:
            engine.dispose()
    frames = {name: canonicalize(raw[name], name, specs[name].columns) for name in INPUTS}
    for name, frame in frames.items():
        log.info("extracted %s: %d rows", name, frame.height)
    return Extracted(frames)


@task(name="extract", retries=2, retry_delay_seconds=[5, 30], cache_policy=NO_CACHE)
def extract_task(sources: SourcesSettings) -> Extracted:
    return extract_sources(sources)
