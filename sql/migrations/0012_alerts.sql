-- Issue 12: real-time payment alerts, inbound keywords, consent round-trip.
-- alert_events: one row per accepted billing webhook (stored before the 202 answer).
create table alert_events (
    event_id varchar primary key,
    kind varchar not null,
    customer_id varchar not null,
    invoice_id varchar not null,
    amount_minor bigint not null,
    currency varchar not null,
    occurred_at_utc timestamp not null,
    received_at_utc timestamp not null,
    payload varchar not null,
    state varchar not null,
    state_reason varchar,
    cancelled_reminders integer,
    updated_at_utc timestamp not null
);
-- alerts: the alert outbox, one row per (event, channel) attempt chain.
create table alerts (
    alert_key varchar primary key,
    event_id varchar not null,
    customer_id varchar not null,
    channel varchar,
    to_address varchar,
    subject varchar,
    body varchar,
    state varchar not null,
    state_reason varchar,
    release_at_utc timestamp,
    attempts integer not null,
    next_attempt_at_utc timestamp,
    accepted_at_utc timestamp,
    genesys_conversation_id varchar,
    genesys_message_id varchar,
    genesys_status varchar,
    created_at_utc timestamp not null,
    updated_at_utc timestamp not null
);
-- alert_log: one row per state change of an alert.
create table alert_log (
    alert_key varchar not null,
    at_utc timestamp not null,
    from_state varchar,
    to_state varchar not null,
    detail varchar
);
-- inbound_messages: one row per inbound SMS (Twilio MessageSid or Genesys message id).
create table inbound_messages (
    message_id varchar primary key,
    source varchar not null,
    from_address varchar not null,
    to_address varchar,
    body varchar,
    keyword varchar,
    action varchar not null,
    reply varchar,
    state varchar not null,
    state_reason varchar,
    received_at_utc timestamp not null,
    updated_at_utc timestamp not null
);
-- consent_events: consent this project captured (keywords, CRM imports), exported to the CRM.
create table consent_events (
    consent_event_id varchar primary key,
    customer_id varchar,
    address varchar,
    channel varchar not null,
    status varchar,
    keyword varchar,
    action varchar not null,
    source varchar not null,
    occurred_at_utc timestamp not null,
    recorded_at_utc timestamp not null,
    inbound_message_id varchar
);
-- callback_requests: one row per CALL keyword (a person rings the customer back).
create table callback_requests (
    inbound_message_id varchar primary key,
    customer_id varchar,
    address varchar not null,
    requested_at_utc timestamp not null,
    source varchar not null
);
-- consent_sync_state: the last successful round-trip per direction.
create table consent_sync_state (
    name varchar primary key,
    synced_until_utc timestamp not null
);
