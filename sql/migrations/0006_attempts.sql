-- Genesys attempts (issue 9): one row per attempt Genesys reports for a message, per source.
-- Natural key (message_key, attempted_at_utc, source): the same attempt read from two sources
-- (the contact-list export and a contact lookup) is two rows; models dedupe by
-- (message_key, attempted_at_utc). outcome_class: sent | failed | skipped | unknown (the
-- wrap-up code's class, tasks/outcomes.py outcome_of). carrier_message_id only where the
-- source carries it (agentless providerMessageId). attempt_day = attempted_at_utc's UTC date,
-- the unit of incremental loads. segments and body_sha256 come from the outbox row.
create table attempts (
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
    loaded_at_utc timestamp not null,
    primary key (message_key, attempted_at_utc, source)
);
create index attempts_day on attempts (attempt_day);
create index attempts_to on attempts (to_address, attempted_at_utc);

-- carrier_rates: the agreed price per SMS segment, per carrier and destination prefix
-- (E.164, longest prefix wins), in micro-units of currency; valid_to exclusive, null = open.
-- reconcile_message checks each final carrier price against segments x rate (price_mismatch).
create table carrier_rates (
    carrier varchar not null,
    destination_prefix varchar not null,
    price_micros_per_segment bigint not null,
    currency varchar not null,
    valid_from date not null,
    valid_to date,
    primary key (carrier, destination_prefix, valid_from)
);
