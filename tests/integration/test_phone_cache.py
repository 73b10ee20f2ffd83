"""The warehouse phone cache: what one run parses, the next reads back unchanged."""

from __future__ import annotations

import polars as pl
import pytest

from tasks.phones import PARSER_VERSION, load_phone_cache, parse_phone_values, save_phone_cache
from tasks.warehouse import make_engine, migrate, read_frame


@pytest.fixture
def engine(warehouse_settings):
    engine = make_engine(warehouse_settings["url"], schema=warehouse_settings.get("db_schema"))
    migrate(engine)
    yield engine
    engine.dispose()


def test_saved_rows_load_back_and_blank_values_are_not_stored(engine) -> None:
    pairs = pl.DataFrame(
        {
            "raw": ["+1 212 555 0100", "020 7946 0958", "garbage", "", None, "+44 7700 900123"],
            "region": ["US", "GB", "US", "US", "US", "GB"],
        }
    )
    parsed = parse_phone_values(pairs, workers=1)
    with engine.begin() as conn:
        assert save_phone_cache(conn, parsed) == 4  # "" and None are not stored
        save_phone_cache(conn, parsed.head(1))  # a racing run stores a row twice
    with engine.begin() as conn:
        loaded = load_phone_cache(conn)
        versions = read_frame(conn, "select distinct parser from phone_cache")
    assert versions["parser"].to_list() == [PARSER_VERSION]
    want = parsed.filter(pl.col("raw").is_not_null() & (pl.col("raw") != "")).sort("raw")
    assert loaded.sort("raw").equals(want)
