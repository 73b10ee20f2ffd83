-- Issue 11: DuckDB's decisions table loses its primary key (see the .duckdb.sql sibling);
-- PostgreSQL keeps it, so this generic file does nothing.
select 1;
