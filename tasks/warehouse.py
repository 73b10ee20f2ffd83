"""The warehouse: one SQLAlchemy URL, a DuckDB file by default or PostgreSQL.

DDL lives in ``sql/migrations/NNNN_<what>.sql`` and analyst views in ``sql/models/<name>.sql``;
a sibling ``<name>.<dialect>.sql`` (``duckdb`` or ``postgresql``, the SQLAlchemy dialect name)
replaces ``<name>.sql`` on that warehouse, so dialect differences live in SQL files, never in
Python branches. :func:`migrate` applies the migrations that are new and records them in
``schema_migrations``, then drops and recreates every model view, a model after the models it
reads (:func:`model_order`). Frames are bulk-loaded through Arrow on DuckDB (a small one of
plain types as one VALUES insert) and ``COPY`` on PostgreSQL, inside the caller's
transaction, so a load is all-or-nothing.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

__all__ = [
    "connect",
    "execute_script",
    "make_engine",
    "migrate",
    "model_order",
    "read_frame",
    "stage",
    "write_frame",
]

log = logging.getLogger(__name__)

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def make_engine(url: str, *, schema: str | None = None) -> Engine:
    """An engine for ``url``; on PostgreSQL every connection uses ``schema`` (created if absent).

    DuckDB file URLs get their parent folder created.
    """
    parsed = sa.engine.make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "duckdb":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    elif parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        if schema:
            kwargs["connect_args"] = {"options": f"-csearch_path={_checked_schema(schema)}"}
    # hide_parameters: an error never prints bound values (addresses, names) into a log line.
    engine = sa.create_engine(parsed, hide_parameters=True, **kwargs)
    if schema:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"create schema if not exists {_checked_schema(schema)}")
    if schema and engine.dialect.name == "duckdb":

        @sa.event.listens_for(engine, "connect")
        def _set_schema(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute(f"set schema '{schema}'")

    return engine


def _checked_schema(schema: str) -> str:
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"schema name {schema!r} must be lower-case letters, digits, underscores")
    return schema


@contextmanager
def connect(engine: Engine) -> Iterator[Connection]:
    """A connection inside one transaction: committed on success, rolled back on error."""
    with engine.begin() as conn:
        yield conn


def _sql_files(folder: str, dialect: str) -> list[tuple[str, str]]:
    """(name, text) of the .sql files in ``sql/<folder>``, dialect overrides applied, sorted."""
    root = resources.files("sql").joinpath(folder)
    generic: dict[str, str] = {}
    override: dict[str, str] = {}
    for entry in root.iterdir():
        name = entry.name
        if not name.endswith(".sql"):
            continue
        parts = name[: -len(".sql")].split(".")
        if len(parts) == 2 and parts[1] == dialect:
            override[parts[0]] = entry.read_text(encoding="utf-8")
        elif len(parts) == 1:
            generic[parts[0]] = entry.read_text(encoding="utf-8")
    merged = generic | override
    return sorted(merged.items())


def _statements(text: str) -> list[str]:
    body = "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def execute_script(conn: Connection, statement: str) -> None:
    """Run one SQL statement as written, through the driver's cursor without parameters (so
    a ``%`` in a LIKE pattern is not read as a placeholder by psycopg), inside the
    connection's transaction."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        cursor.execute(statement)
    finally:
        cursor.close()


def model_order(models: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """``(name, text)`` of the models ordered so that each comes after the models its text
    names (a model reading ``reconcile_message`` is created after it); ties by name.
    A cycle raises ``ValueError``."""
    names = {name for name, _ in models}
    texts = dict(models)
    needs = {
        name: {
            other
            for other in names
            if other != name and re.search(rf"\b{re.escape(other)}\b", _code(texts[name]))
        }
        for name in names
    }
    ordered: list[tuple[str, str]] = []
    done: set[str] = set()
    while len(done) < len(names):
        ready = sorted(n for n in names - done if needs[n] <= done)
        if not ready:
            raise ValueError(f"models depend on each other in a cycle: {sorted(names - done)}")
        for name in ready:
            ordered.append((name, texts[name]))
            done.add(name)
    return ordered


def _code(text: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


def migrate(engine: Engine) -> list[str]:
    """Apply new migrations, then (re)create the analyst views. Returns the versions applied."""
    dialect = engine.dialect.name
    applied: list[str] = []
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "create table if not exists schema_migrations "
            "(version varchar primary key, applied_at_utc timestamp not null)"
        )
        done = {row[0] for row in conn.exec_driver_sql("select version from schema_migrations")}
        for name, text in _sql_files("migrations", dialect):
            if name in done:
                continue
            for statement in _statements(text):
                execute_script(conn, statement)
            conn.execute(
                sa.text("insert into schema_migrations values (:v, :t)"),
                {"v": name, "t": datetime.now(UTC).replace(tzinfo=None)},
            )
            applied.append(name)
        models = model_order(_sql_files("models", dialect))
        for name, _text in reversed(models):
            conn.exec_driver_sql(f"drop view if exists {name}")
        for _name, text in models:
            for statement in _statements(text):
                execute_script(conn, statement)
    if applied:
        log.info("warehouse migrations applied: %s", ", ".join(applied))
    return applied


_COPY_ROWS = 100_000
"""Rows per slice of CSV text fed to one PostgreSQL COPY."""


def write_frame(conn: Connection, table: str, frame: pl.DataFrame) -> int:
    """Append ``frame`` to ``table`` (columns by name) inside the connection's transaction."""
    if frame.height == 0:
        return 0
    columns = ", ".join(frame.columns)
    if conn.dialect.name == "duckdb" and _small_plain(frame):
        # a few rows of plain types (the alerts service's groups): one parameterized
        # multi-row VALUES insert costs a fraction of an Arrow registration's fixed cost
        _values_insert(conn, table, frame.columns, frame.rows())
    elif conn.dialect.name == "duckdb":
        raw = conn.connection.dbapi_connection
        assert raw is not None
        view = f"_load_{table}"
        raw.register(view, frame.to_arrow())
        try:
            raw.execute(f"insert into {table} ({columns}) select {columns} from {view}")
        finally:
            raw.unregister(view)
    elif conn.dialect.name == "postgresql":
        raw = conn.connection.dbapi_connection
        assert raw is not None
        with raw.cursor() as cur:  # type: ignore[attr-defined]
            sql = f"copy {table} ({columns}) from stdin with (format csv, null '\\N')"
            with cur.copy(sql) as copy:
                # One COPY, fed in slices: the CSV text of a million rows is never in memory
                # at once (nor copied out of its buffer).
                for start in range(0, frame.height, _COPY_ROWS):
                    buffer = io.BytesIO()
                    # every text quoted: COPY reads only an *unquoted* \\N as NULL, and a
                    # value that is the two characters \\N (an id) must stay text
                    frame.slice(start, _COPY_ROWS).write_csv(
                        buffer,
                        include_header=False,
                        null_value="\\N",
                        datetime_format=None,
                        quote_style="non_numeric",
                    )
                    copy.write(buffer.getbuffer())
    else:
        rows = frame.to_dicts()
        conn.execute(sa.table(table, *(sa.column(c) for c in frame.columns)).insert(), rows)
    return frame.height


@contextmanager
def stage(conn: Connection, name: str, frame: pl.DataFrame, *, like: str) -> Iterator[None]:
    """``frame`` readable as the table ``name`` inside the block (joins, ``update ... from``),
    its columns a subset of table ``like``'s. DuckDB reads the frame's Arrow memory in place
    (a view registered on the connection, nothing copied); PostgreSQL gets a temporary table
    of ``like``'s columns loaded with COPY (a leftover of the same name is dropped first)."""
    conn.exec_driver_sql(f"drop table if exists {name}")
    if conn.dialect.name != "duckdb":
        columns = ", ".join(frame.columns)
        conn.exec_driver_sql(
            f"create temporary table {name} as select {columns} from {like} where 1 = 0"
        )
        write_frame(conn, name, frame)
        yield
        return
    raw = conn.connection.dbapi_connection
    assert raw is not None
    raw.register(name, frame.to_arrow())
    try:
        yield
    finally:
        raw.unregister(name)


def write_rows(
    conn: Connection,
    table: str,
    rows: Sequence[Sequence[Any]],
    schema: Mapping[str, pl.DataType],
) -> int:
    """Append plain Python rows (tuples in ``schema``'s column order: strings, integers,
    floats, booleans, dates, naive datetimes, None) to ``table``. On DuckDB a few rows go as
    one VALUES insert straight from the tuples (no frame built: the alerts service's groups);
    otherwise, and for more rows, a frame of ``schema`` through :func:`write_frame`."""
    if not rows:
        return 0
    if conn.dialect.name == "duckdb" and len(rows) * len(schema) <= SMALL_FRAME_CELLS:
        _values_insert(conn, table, list(schema), rows)
        return len(rows)
    return write_frame(conn, table, pl.DataFrame(rows, schema=dict(schema), orient="row"))


def _values_insert(
    conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """One parameterized multi-row ``INSERT ... VALUES`` on the raw DuckDB connection."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    row = "(" + ", ".join("?" * len(columns)) + ")"
    raw.execute(
        f"insert into {table} ({', '.join(columns)}) values " + ", ".join([row] * len(rows)),
        [value for values in rows for value in values],
    )


SMALL_FRAME_CELLS = 256
"""At most this many cells (rows x columns) go to DuckDB as one VALUES insert."""


def _small_plain(frame: pl.DataFrame) -> bool:
    """A frame small enough for one VALUES insert, of types that bind as the same values
    (strings, integers, floats, booleans, dates, naive datetimes)."""
    if frame.height * frame.width > SMALL_FRAME_CELLS:
        return False
    return all(
        dtype == pl.String
        or dtype == pl.Boolean
        or dtype == pl.Date
        or dtype.is_integer()
        or dtype.is_float()
        or (isinstance(dtype, pl.Datetime) and dtype.time_zone is None)
        for dtype in frame.dtypes
    )


def read_arrow(conn: Connection, query: str, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Run ``query`` (no bound parameters: inline only trusted literals) into a polars frame
    through Arrow (DuckDB) or ``COPY ... TO STDOUT`` (PostgreSQL): no Python row objects.

    ``schema`` names the query's columns in order and their types (no list columns on
    PostgreSQL, whose COPY is CSV).
    """
    if conn.dialect.name == "duckdb":
        raw = conn.connection.dbapi_connection
        assert raw is not None
        table = raw.execute(query).to_arrow_table()  # type: ignore[attr-defined]
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        if frame.width == 0:
            return pl.DataFrame(schema=schema)
        return frame.rename(dict(zip(frame.columns, schema, strict=True))).cast(schema)  # type: ignore[arg-type]
    if conn.dialect.name == "postgresql":
        raw = conn.connection.dbapi_connection
        assert raw is not None
        buffer = io.BytesIO()
        # PostgreSQL's CSV default: NULL is an unquoted empty field, '' a quoted one, and
        # polars reads them the same way; a NULL marker such as \\N would also swallow the
        # text \\N (polars cannot tell a quoted marker from an unquoted one)
        sql = f"copy ({query}) to stdout with (format csv)"
        with raw.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[attr-defined]
            for block in copy:
                buffer.write(block)
        if buffer.tell() == 0:
            return pl.DataFrame(schema=schema)
        buffer.seek(0)
        text_schema = {c: pl.String() for c in schema}
        frame = pl.read_csv(
            buffer,
            has_header=False,
            new_columns=list(schema),
            schema=text_schema,
        )
        return frame.with_columns(
            pl.col(c).str.to_datetime(time_unit="us")
            if t == pl.Datetime
            else pl.col(c).str.to_date()
            if t == pl.Date
            else pl.col(c).cast(t)
            for c, t in schema.items()
        )
    return read_frame(conn, query, schema=schema)


def read_frame(
    conn: Connection,
    query: str,
    params: dict[str, Any] | None = None,
    schema: dict[str, pl.DataType] | Sequence[tuple[str, pl.DataType]] | None = None,
) -> pl.DataFrame:
    """Run ``query`` and return its rows as a polars frame (empty frames keep ``schema``)."""
    result = conn.execute(sa.text(query), params or {})
    names = list(result.keys())
    rows = result.fetchall()
    if schema is not None:
        return pl.DataFrame(rows, schema=schema, orient="row")
    return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)
