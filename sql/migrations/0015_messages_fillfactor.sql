-- Issue 11: PostgreSQL keeps half of each messages page free for refreshes (see the
-- .postgresql.sql sibling); DuckDB has no such setting, so this generic file does nothing.
select 1;
