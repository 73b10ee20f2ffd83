-- Issue 11: PostgreSQL's decisions index by message key keeps planned decisions only (see the
-- .postgresql.sql sibling); DuckDB has had no secondary index there since 0012, so this
-- generic file does nothing.
select 1;
