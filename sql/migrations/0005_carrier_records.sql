-- PROVISIONAL (i9-reconcile): the carriers helper owns this migration on branch i9-carriers;
-- this copy follows the columns agreed in i9-design.md so the reconciliation models can be
-- built and tested before that branch is merged. On merge, their file replaces this one.
create table carrier_records (
    carrier varchar not null,
    carrier_message_id varchar not null,
    part_index integer not null default 0,
    parts_total integer,
    account_ref varchar,
    from_address varchar,
    to_address varchar,
    direction varchar,
    status varchar,
    status_class varchar not null,
    error_code varchar,
    num_segments integer,
    price_micros bigint,
    price_currency varchar,
    price_final boolean not null default false,
    sent_at_utc timestamp,
    updated_at_utc timestamp,
    sender_reference varchar,
    body_sha256 varchar,
    source_file varchar,
    source_row integer,
    loaded_at_utc timestamp not null,
    load_id varchar not null,
    primary key (carrier, carrier_message_id, part_index)
);
create table carrier_invoices (
    carrier varchar not null,
    period_start date not null,
    period_end date not null,
    category varchar not null,
    count bigint,
    amount_micros bigint not null,
    currency varchar not null
);
