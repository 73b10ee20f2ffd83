-- dnc_entries: one row per address this pipeline added to its Genesys DNC list.
-- Lets each push add only the opt-outs that are new since the last one.
create table dnc_entries (
    address varchar primary key,
    kind varchar not null,
    dnc_list_id varchar not null,
    added_at_utc timestamp not null,
    run_id varchar
);
