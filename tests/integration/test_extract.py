import json

import polars as pl
import pytest
import sqlalchemy as sa

from tasks.errors import SourceError
from tasks.extract import extract_sources
from tasks.normalize import normalize
from tasks.settings import SourceSpec, SourcesSettings
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


# ---------------------------------------------------------------- encodings (issue 7, item 6)


def _write_sources(tmp_path, customers_bytes: bytes, encoding: str | None = None) -> dict:
    """Sources whose customers.csv holds the given bytes; the other inputs are minimal utf-8."""
    (tmp_path / "customers.csv").write_bytes(customers_bytes)
    others = {
        "invoices": f.frame("invoices", []),
        "consent_events": f.frame("consent_events", []),
        "contact_history": f.frame("contact_history", []),
    }
    for name, frame in others.items():
        frame.write_csv(tmp_path / f"{name}.csv")
    spec = {n: {"kind": "csv", "path": str(tmp_path / f"{n}.csv")} for n in [*others, "customers"]}
    if encoding is not None:
        spec["customers"]["encoding"] = encoding
    return spec


def _customers_csv(names: list[str]) -> str:
    rows = [f.customer(customer_id=f"C{i}", full_name=n) for i, n in enumerate(names)]
    return f.frame("customers", rows).write_csv()


@pytest.mark.parametrize(
    ("encoding", "names"),
    [
        ("utf-8", ["Zoë Ångström – €", "Nguyễn Văn A"]),
        ("latin-1", ["José Müller", "Façade Ñúñez"]),
        ("cp1252", ["Zoë “Quote” – €", "Œuvre Šimek"]),
    ],
    ids=["utf-8", "latin-1", "cp1252"],
)
def test_csv_sources_are_decoded_with_their_encoding(tmp_path, encoding, names) -> None:
    data = _customers_csv(names).encode(encoding)
    extracted = extract_sources(
        SourcesSettings.model_validate(_write_sources(tmp_path, data, encoding))
    )
    assert extracted.frames["customers"]["full_name"].to_list() == names
    assert extracted.decode_errors == {}
    n = normalize(extracted)
    assert n.customers["full_name"].to_list() == names
    assert n.quarantine.filter(pl.col("scope") == "row").height == 0


def test_latin1_file_read_as_utf8_is_never_lossy(tmp_path) -> None:
    data = _customers_csv(["José Müller", "Plain Name"]).encode("latin-1")
    extracted = extract_sources(SourcesSettings.model_validate(_write_sources(tmp_path, data)))
    assert extracted.decode_errors == {"customers": "utf-8"}
    n = normalize(extracted)
    assert n.customers["full_name"].to_list() == ["Plain Name"]
    q = n.quarantine.filter(pl.col("source") == "customers")
    assert q["rule"].to_list() == ["encoding_invalid"]
    assert q["source_row"].to_list() == [0]
    assert "full_name" in q["reason"][0]
    assert "utf-8" in q["reason"][0]
    assert json.loads(q["raw_values"][0])["full_name"] == "Jos\\xe9 M\\xfcller"
    assert not n.customers["full_name"].str.contains("\ufffd").any()


def test_one_bad_byte_quarantines_only_its_row_and_rows_line_up(tmp_path) -> None:
    text = _customers_csv(["Ana\nSilva", "Bad BYTE", "Zoë Last"])
    assert '"Ana\nSilva"' in text  # the embedded newline is quoted
    data = text.encode("utf-8").replace(b"BYTE", b"\xff\xfe")
    extracted = extract_sources(SourcesSettings.model_validate(_write_sources(tmp_path, data)))
    frame = extracted.frames["customers"]
    assert frame["source_row"].to_list() == [0, 1, 2]
    assert frame["customer_id"].to_list() == ["C0", "C1", "C2"]
    n = normalize(extracted)
    assert n.customers["full_name"].to_list() == ["Ana\nSilva", "Zoë Last"]
    q = n.quarantine.filter((pl.col("source") == "customers") & (pl.col("scope") == "row"))
    assert q.select("source_row", "record_key", "rule").rows() == [(1, "C1", "encoding_invalid")]
    assert json.loads(q["raw_values"][0])["full_name"] == "Bad \\xff\\xfe"
    assert n.customers.height + q.height == 3


def test_cp1252_undefined_byte_is_quarantined(tmp_path) -> None:
    data = _customers_csv(["Caf\u00e9 X", "Ok"]).encode("cp1252").replace(b" X", b" \x81")
    spec = _write_sources(tmp_path, data, "cp1252")
    n = normalize(extract_sources(SourcesSettings.model_validate(spec)))
    q = n.quarantine.filter(pl.col("source") == "customers")
    assert q["rule"].to_list() == ["encoding_invalid"]
    assert "cp1252" in q["reason"][0]
    assert json.loads(q["raw_values"][0])["full_name"] == "Café \\x81"
    assert n.customers["full_name"].to_list() == ["Ok"]


@pytest.mark.parametrize("encoding", [None, "utf-8-sig", "UTF8"], ids=["default", "sig", "alias"])
def test_utf8_byte_order_mark_is_skipped(tmp_path, encoding) -> None:
    data = b"\xef\xbb\xbf" + _customers_csv(["Zoë"]).encode("utf-8")
    spec = _write_sources(tmp_path, data, encoding)
    extracted = extract_sources(SourcesSettings.model_validate(spec))
    assert extracted.frames["customers"]["customer_id"].to_list() == ["C0"]
    assert extracted.frames["customers"]["full_name"].to_list() == ["Zoë"]
    assert extracted.decode_errors == {}


@pytest.mark.parametrize("encoding", ["klingon", "base64", "rot13"])
def test_encoding_must_be_a_text_codec(encoding) -> None:
    with pytest.raises(ValueError, match=r"codec|text encoding"):
        SourceSpec(kind="csv", path="x.csv", encoding=encoding)


def test_a_csv_with_old_mac_line_ends_keeps_its_rows(tmp_path) -> None:
    """CR alone ends the lines of some exports: polars read the file as one header line with
    no rows, so contact history came back empty, silently, and the frequency cap and the
    attempt count saw no earlier contact."""
    frames = _inputs()
    for name, frame in frames.items():
        frame.write_csv(tmp_path / f"{name}.csv")
    text = frames["contact_history"].write_csv().replace("\n", "\r")
    (tmp_path / "contact_history.csv").write_bytes(text.encode())
    spec = {n: {"kind": "csv", "path": str(tmp_path / f"{n}.csv")} for n in frames}
    extracted = extract_sources(SourcesSettings.model_validate(spec))
    history = extracted.frames["contact_history"]
    assert history.height == 1
    assert history["attempted_at"].to_list() == ["2026-11-22T10:00:00Z"]
    assert normalize(extracted).contact_history.height == 1


@pytest.mark.parametrize(
    ("source", "header"),
    [("invoices", "paid_at "), ("invoices", " Paid_At"), ("customers", "Preferred_Timezone")],
    ids=["trailing-space", "leading-space-and-case", "case"],
)
def test_a_header_that_only_looks_like_a_canonical_column_is_refused(
    tmp_path, source, header
) -> None:
    """'paid_at ' (a space after the name) was an extra column and paid_at itself absent: an
    optional column, so every invoice read as unpaid and was reminded. Refused, named."""
    frames = _inputs()
    canonical = header.strip().lower()
    frames[source] = frames[source].rename({canonical: header})
    for name, frame in frames.items():
        frame.write_csv(tmp_path / f"{name}.csv")
    spec = {n: {"kind": "csv", "path": str(tmp_path / f"{n}.csv")} for n in frames}
    with pytest.raises(SourceError, match=f"{source}: column '{header}' looks like {canonical}"):
        extract_sources(SourcesSettings.model_validate(spec))
