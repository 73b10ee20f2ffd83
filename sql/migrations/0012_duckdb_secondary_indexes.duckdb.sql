-- Issue 11: DuckDB scans columns fast without secondary indexes, and an ART index makes every
-- bulk insert and every UPDATE of an indexed column (state, wave_start_utc, local_send_date:
-- a delete plus an insert) and every checkpoint pay for it: at a million customers the
-- write stage spent most of its time maintaining them. Primary keys stay (uniqueness).
drop index if exists decisions_message_key;
drop index if exists decisions_customer;
drop index if exists quarantine_run;
drop index if exists messages_state;
drop index if exists messages_customer;
drop index if exists message_events_key;
