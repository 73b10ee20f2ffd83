-- reconcile_daily: one row per day (UTC date of the send) x Genesys campaign x carrier x
-- price currency, from reconcile_message (carrier null = attempts with no carrier record;
-- campaign null = carrier messages with no attempt). Money in micro-units of price_currency.
create or replace view reconcile_daily as
with message_rows as (
    select
        day, genesys_campaign_id, carrier, price_currency, message_key, outcome_class,
        carrier_message_id, carrier_status_class, carrier_segments, price_micros, price_final,
        status
    from reconcile_message
)

select
    day,
    genesys_campaign_id,
    carrier,
    price_currency,
    sum(case when message_key is not null then 1 else 0 end) as attempts,
    sum(case when outcome_class = 'sent' then 1 else 0 end) as sent,
    sum(case when carrier_message_id is not null then 1 else 0 end) as carrier_messages,
    sum(case when carrier_status_class = 'delivered' then 1 else 0 end) as delivered,
    sum(case when carrier_status_class = 'undelivered' then 1 else 0 end) as undelivered,
    sum(case when carrier_status_class = 'failed' then 1 else 0 end) as failed_at_carrier,
    cast(coalesce(sum(carrier_segments), 0) as bigint) as segments,
    cast(coalesce(sum(case when price_final then price_micros end), 0) as bigint)
        as billed_micros,
    cast(coalesce(sum(case when not price_final then price_micros end), 0) as bigint)
        as provisional_micros,
    sum(case when status = 'matched' then 1 else 0 end) as matched,
    sum(case when status = 'attempted_not_billed' then 1 else 0 end) as attempted_not_billed,
    sum(case when status = 'billed_not_attempted' then 1 else 0 end) as billed_not_attempted,
    sum(case when status = 'price_mismatch' then 1 else 0 end) as price_mismatch,
    sum(case when status = 'segment_mismatch' then 1 else 0 end) as segment_mismatch,
    sum(case when status = 'pending_final' then 1 else 0 end) as pending_final,
    sum(case when status = 'ambiguous_match' then 1 else 0 end) as ambiguous_match
from message_rows
group by day, genesys_campaign_id, carrier, price_currency
