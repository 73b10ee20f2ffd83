-- Carrier records and carrier invoices (issue 9): what the carriers say they did and billed.
-- carrier_records grain: one row per carrier message, per part where the carrier reports parts
-- (part_index 1..parts_total, else 1 of 1). Natural key (carrier, carrier_message_id,
-- part_index). Money: price_micros in price_currency micro-units (1 USD = 1,000,000),
-- positive = a charge; null while the carrier has not priced it (price_final false).
-- status is the carrier's raw value, status_class one of pending | accepted | delivered |
-- undelivered | failed. Loaded by tasks/carriers.py (stage, delete by key, insert).
create table carrier_records (
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
    load_id varchar not null,
    primary key (carrier, carrier_message_id, part_index)
);
create index carrier_records_to_sent on carrier_records (to_address, sent_at_utc);
create index carrier_records_reference on carrier_records (sender_reference);

-- carrier_invoices grain: one row per carrier invoice line (carrier, account, period, category);
-- account_ref is '' when the invoice names no account. amount_micros positive = a charge.
create table carrier_invoices (
    carrier varchar not null,
    account_ref varchar not null,
    period_start date not null,
    period_end date not null,
    category varchar not null,
    count bigint,
    count_unit varchar,
    amount_micros bigint not null,
    currency varchar not null,
    source_file varchar not null,
    source_row integer not null,
    loaded_at_utc timestamp not null,
    load_id varchar not null,
    primary key (carrier, account_ref, period_start, period_end, category)
);
