-- Issue 10: the instant a run plans for and where it came from.
-- runs.as_of_utc stays the instant planned for; runs.started_at_utc the wall clock at start.
-- scheduled_start_utc: the Prefect flow run's scheduled (expected) start time, null outside
-- Prefect; as_of_source: 'parameter' (as_of / now given), 'scheduled' (empty: the flow run's
-- scheduled start, so a late run, a retry or a backfill plans for its slot) or 'clock'.
alter table runs add column scheduled_start_utc timestamp;
alter table runs add column as_of_source varchar;
