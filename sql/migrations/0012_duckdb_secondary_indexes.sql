-- Issue 11: secondary indexes on DuckDB cost more than they give (see the .duckdb.sql
-- sibling); PostgreSQL keeps them, so this generic file does nothing.
select 1;
