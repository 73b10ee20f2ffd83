-- DuckDB only (issue 9 benchmark): attempts and carrier_records without ART indexes.
-- Measured: ART indexes make DuckDB's checkpoints dearer (0.29 s vs 0.04 s after adding 1,000
-- rows at 1M; the 1M table load went from 45.6 s to 9.5 s without them), and DuckDB does not
-- use them for the models' joins or time ranges
-- (zone maps do that: loads arrive day by day, clustered by time). The natural keys stay
-- those of 0005/0006 and are kept by the loaders (tasks/attempts.py load_attempts,
-- tasks/carriers.py: deduplicate the stage by key, delete by key, insert, one transaction);
-- PostgreSQL keeps its primary keys and indexes.
drop index if exists attempts_day;
drop index if exists attempts_to;
create table attempts_plain (
    message_key varchar not null,
    customer_id varchar,
    invoice_ids varchar,
    channel varchar not null,
    source varchar not null,
    genesys_contact_list_id varchar,
    genesys_campaign_id varchar,
    genesys_conversation_id varchar,
    genesys_message_id varchar,
    attempted_at_utc timestamp not null,
    wrapup_code varchar,
    outcome_class varchar not null,
    to_address varchar,
    body_sha256 varchar,
    segments integer,
    carrier_message_id varchar,
    attempt_day date not null,
    load_id varchar not null,
    loaded_at_utc timestamp not null
);
insert into attempts_plain select * from attempts;
drop table attempts;
alter table attempts_plain rename to attempts;
drop index if exists carrier_records_to_sent;
drop index if exists carrier_records_reference;
create table carrier_records_plain (
    carrier varchar not null,
    carrier_message_id varchar not null,
    part_index integer not null,
    parts_total integer not null,
    account_ref varchar,
    from_address varchar,
    to_address varchar not null,
    direction varchar,
    status varchar not null,
    status_class varchar not null,
    error_code varchar,
    num_segments integer,
    price_micros bigint,
    price_currency varchar,
    price_final boolean not null,
    sent_at_utc timestamp not null,
    updated_at_utc timestamp not null,
    sender_reference varchar,
    body_sha256 varchar,
    source_file varchar not null,
    source_row integer not null,
    loaded_at_utc timestamp not null,
    load_id varchar not null
);
insert into carrier_records_plain select * from carrier_records;
drop table carrier_records;
alter table carrier_records_plain rename to carrier_records;
