-- Core warehouse tables. Portable between DuckDB and PostgreSQL.
-- Every timestamp column ending in _utc holds UTC wall time (timestamp without time zone).
-- Money is integer minor units (cents) with an ISO 4217 currency beside it.

-- runs: one row per flow run.
create table runs (
    run_id varchar primary key,
    flow varchar not null,
    as_of_utc timestamp not null,
    started_at_utc timestamp not null,
    finished_at_utc timestamp,
    status varchar not null,
    dry_run boolean not null,
    parameters varchar,
    customers_in integer,
    customers_quarantined integer,
    invoices_in integer,
    invoices_quarantined integer,
    consent_events_in integer,
    consent_events_quarantined integer,
    contact_history_in integer,
    contact_history_quarantined integer,
    decisions_planned integer,
    decisions_excluded integer,
    decisions_quarantined integer,
    messages_planned integer,
    accounting_ok boolean,
    error varchar
);

-- decisions: one row per run x customer x invoice x channel (x the cadence step due, if any).
create table decisions (
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
    primary key (run_id, invoice_row, channel)
);
create index decisions_message_key on decisions (message_key);
create index decisions_customer on decisions (customer_id);

-- quarantine: one row per rejected input row (scope row) or rejected field (scope field).
create table quarantine (
    run_id varchar not null,
    source varchar not null,
    source_row integer not null,
    record_key varchar,
    scope varchar not null,
    rule varchar not null,
    reason varchar not null,
    raw_values varchar not null
);
create index quarantine_run on quarantine (run_id, source);

-- messages: the outbox. One row per message key; state moves forward only.
create table messages (
    message_key varchar primary key,
    customer_id varchar not null,
    channel varchar not null,
    local_send_date date not null,
    time_zone varchar not null,
    candidate_zones varchar not null,
    send_at_local timestamp not null,
    send_at_utc timestamp not null,
    window_start_utc timestamp not null,
    window_end_utc timestamp not null,
    wave_id varchar not null,
    slot integer not null,
    wave_start_utc timestamp not null,
    to_address varchar not null,
    template varchar not null,
    subject varchar,
    body varchar not null,
    encoding varchar,
    segments integer,
    units integer,
    invoice_ids varchar not null,
    invoice_count integer not null,
    cadence_step integer not null,
    amount_total_minor bigint not null,
    currency varchar not null,
    link_token varchar not null,
    state varchar not null,
    state_reason varchar,
    first_run_id varchar not null,
    last_run_id varchar not null,
    created_at_utc timestamp not null,
    updated_at_utc timestamp not null,
    genesys_contact_list_id varchar,
    genesys_contact_id varchar,
    genesys_campaign_id varchar,
    genesys_conversation_id varchar,
    genesys_message_id varchar,
    genesys_error_code varchar
);
create index messages_state on messages (state, wave_start_utc);
create index messages_customer on messages (customer_id, local_send_date);

-- message_events: every state change of a message, append-only.
create table message_events (
    message_key varchar not null,
    at_utc timestamp not null,
    run_id varchar,
    from_state varchar,
    to_state varchar not null,
    detail varchar
);
create index message_events_key on message_events (message_key);
