-- Issue 10: crash hygiene. Who runs a run, and when a dead one was found.
-- runner: "<host>:<pid>:<process start ticks>" of the process that started the run; the next
-- run of any flow marks a 'running' row whose process is gone (same host), whose Prefect flow
-- run is over (any host), or which is older than 12 hours, as status 'abandoned' with
-- abandoned_at_utc = when it was found and error naming the run that found it.
alter table runs add column runner varchar;
alter table runs add column abandoned_at_utc timestamp;
