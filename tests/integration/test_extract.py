import polars as pl
import pytest
import sqlalchemy as sa

from tasks.errors import SourceError
from tasks.extract import extract_sources
from tasks.settings import SourcesSettings
from tests import factories as f

CUSTOMER_MAP = {
    "customer_id": "cust_no",
    "phone": "mobile",
    "email": "mail",
    "country": "country_code",
}


def _inputs():
    customers = [f.customer(), f.customer(phone="n/a")]
    invoices = [f.invoice(c["customer_id"]) for c in customers]
    consent = [f.consent(c["customer_id"], "sms") for c in customers]
    history = [f.contact(customers[0]["customer_id"], "2026-11-22T10:00:00Z")]
    return {
        "customers": f.frame("customers", customers),
        "invoices": f.frame("invoices", invoices),
        "consent_events": f.frame("consent_events", consent),
        "contact_history": f.frame("contact_history", history),
    }


def _load_postgres(pg_url: str, schema: str, frames: dict[str, pl.DataFrame]) -> None:
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        for name, frame in frames.items():
            if name == "customers":
                frame = frame.rename(CUSTOMER_MAP)
            columns = ", ".join(f"{c} text" for c in frame.columns)
            if name == "invoices":
                columns = columns.replace("amount_due text", "amount_due numeric(12,2)").replace(
                    "due_date text", "due_date date"
                )
            conn.exec_driver_sql(f"create table {schema}.{name} ({columns})")
            rows = frame.to_dicts()
            values = ", ".join(":" + c for c in frame.columns)
            conn.execute(
                sa.text(f"insert into {schema}.{name} values ({values})"),
                rows,
            )
    engine.dispose()


def _sql_sources(pg_url: str, schema: str) -> SourcesSettings:
    return SourcesSettings.model_validate(
        {
            "sql_url": pg_url,
            "customers": {"kind": "sql", "table": f"{schema}.customers", "columns": CUSTOMER_MAP},
            "invoices": {"kind": "sql", "table": f"{schema}.invoices"},
            "consent_events": {"kind": "sql", "query": f"select * from {schema}.consent_events"},
            "contact_history": {"kind": "sql", "table": f"{schema}.contact_history"},
        }
    )


@pytest.mark.postgres
def test_postgres_sources_with_column_mapping_match_the_csv_sources(
    pg_url, pg_schema, tmp_path
) -> None:
    frames = _inputs()
    _load_postgres(pg_url, pg_schema, frames)
    for name, frame in frames.items():
        frame.write_csv(tmp_path / f"{name}.csv")
    from_sql = extract_sources(_sql_sources(pg_url, pg_schema))
    from_csv = extract_sources(
        SourcesSettings.model_validate(
            {n: {"kind": "csv", "path": str(tmp_path / f"{n}.csv")} for n in frames}
        )
    )
    assert (
        from_sql.counts
        == from_csv.counts
        == {"customers": 2, "invoices": 2, "consent_events": 2, "contact_history": 1}
    )
    for name in frames:
        assert from_sql.frames[name].equals(from_csv.frames[name]), name


@pytest.mark.postgres
def test_all_sql_sources_are_read_in_one_snapshot(pg_url, pg_schema) -> None:
    _load_postgres(pg_url, pg_schema, _inputs())
    query = "select *, txid_current()::text as txid from {schema}.{table}"
    sources = SourcesSettings.model_validate(
        {
            "sql_url": pg_url,
            "customers": {
                "kind": "sql",
                "query": query.format(schema=pg_schema, table="customers"),
                "columns": CUSTOMER_MAP,
            },
            "invoices": {"kind": "sql", "query": query.format(schema=pg_schema, table="invoices")},
            "consent_events": {
                "kind": "sql",
                "query": query.format(schema=pg_schema, table="consent_events"),
            },
            "contact_history": {
                "kind": "sql",
                "query": query.format(schema=pg_schema, table="contact_history"),
            },
        }
    )
    extracted = extract_sources(sources)
    txids = {frame["txid"][0] for frame in extracted.frames.values()}
    assert len(txids) == 1


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"phone": "no_such_column"}, "phone \\(looked for column 'no_such_column'\\)"),
        ({"shoe_size": "x"}, "unknown canonical columns"),
    ],
    ids=["mapped-column-missing", "unknown-canonical-name"],
)
def test_mapping_errors_name_the_column(tmp_path, mapping, message) -> None:
    frames = _inputs()
    for name, frame in frames.items():
        frame.write_csv(tmp_path / f"{name}.csv")
    spec = {n: {"kind": "csv", "path": str(tmp_path / f"{n}.csv")} for n in frames}
    spec["customers"]["columns"] = mapping
    with pytest.raises(SourceError, match=message):
        extract_sources(SourcesSettings.model_validate(spec))


def test_parquet_source_keeps_typed_columns_as_text(tmp_path) -> None:
    frames = _inputs()
    for name, frame in frames.items():
        frame.write_csv(tmp_path / f"{name}.csv")
    frames["invoices"].with_columns(
        pl.col("due_date").str.to_date(), pl.col("amount_due").cast(pl.Float64)
    ).write_parquet(tmp_path / "invoices.parquet")
    spec = {n: {"kind": "csv", "path": str(tmp_path / f"{n}.csv")} for n in frames}
    spec["invoices"] = {"kind": "parquet", "path": str(tmp_path / "invoices.parquet")}
    extracted = extract_sources(SourcesSettings.model_validate(spec))
    assert extracted.frames["invoices"]["due_date"].to_list() == ["2026-11-24", "2026-11-24"]
    assert extracted.frames["invoices"].schema["amount_due"] == pl.String


def test_missing_optional_history_is_empty_not_an_error(tmp_path) -> None:
    frames = _inputs()
    for name in ("customers", "invoices", "consent_events"):
        frames[name].write_csv(tmp_path / f"{name}.csv")
    spec = {n: {"kind": "csv", "path": str(tmp_path / f"{n}.csv")} for n in frames}
    spec["contact_history"]["optional"] = True
    assert extract_sources(SourcesSettings.model_validate(spec)).counts["contact_history"] == 0
