-- Issue 11: the Data Docs site of each build run, and user-maintained no-send days.
-- runs.data_docs_path: index.html of the run's Great Expectations Data Docs (null: not built).
alter table runs add column data_docs_path varchar;

-- no_send_days: one row per country (x subdivision) x local date on which no reminder goes
-- out, maintained by the user (company closures, regional days the holidays package lacks).
-- subdivision null = the whole country; otherwise an ISO 3166-2 suffix (US state "NY", CA
-- province "ON"). Merged with the holidays package calendar and calendar.extra_csv each run.
create table no_send_days (
    country varchar not null,
    subdivision varchar,
    day date not null,
    name varchar not null
);
