-- Issue 11: on DuckDB the decisions primary key (run_id, invoice_row, channel) is an ART
-- index that every run's bulk insert (three million rows at a million customers) and every
-- checkpoint pay for: at 1M the write stage spent about half its time on it. Uniqueness per
-- run holds by construction (tasks.plan: one decision per invoice row x channel, checked by
-- the run's accounting; start_run deletes a re-used run id's rows first). DuckDB cannot drop
-- a primary key, so the table is copied into one without it. PostgreSQL keeps its key.
create table decisions_keyless (
    run_id varchar not null,
    invoice_id varchar,
    invoice_row integer not null,
    customer_id varchar,
    channel varchar not null,
    cadence_step integer,
    status varchar not null,
    reason varchar not null,
    detail varchar,
    message_key varchar,
    time_zone varchar,
    local_send_date date,
    send_at_local timestamp,
    send_at_utc timestamp,
    wave_id varchar,
    slot integer,
    amount_due_minor bigint,
    currency varchar,
    zone_source varchar,
    candidate_zones varchar,
    send_at_local_by_zone varchar
);
insert into decisions_keyless select
    run_id, invoice_id, invoice_row, customer_id, channel, cadence_step, status, reason, detail,
    message_key, time_zone, local_send_date, send_at_local, send_at_utc, wave_id, slot,
    amount_due_minor, currency, zone_source, candidate_zones, send_at_local_by_zone
from decisions;
drop table decisions;
alter table decisions_keyless rename to decisions;
