-- delivery_by_wave: one row per Genesys campaign x wave (channel x zone x local date x slot)
-- of the SMS messages Genesys attempted: messages, attempts, and per message its delivery
-- from matched carrier records (reconcile_message.delivery; a message counts delivered when any
-- of its attempts was delivered, else undelivered when any was; not_final = pending inside
-- 72 h or a carrier status that never became final; ambiguous; no_carrier_record).
-- delivery_rate = delivered / messages. Agentless attempts have no campaign (null).
create or replace view delivery_by_wave as
with message_rows as (
    select message_key, genesys_campaign_id, delivery, status
    from reconcile_message
    where message_key is not null
),

outbox as (
    select message_key, wave_id, channel, time_zone, local_send_date, slot, wave_start_utc
    from messages
),

per_message as (
    select
        message_key,
        max(genesys_campaign_id) as genesys_campaign_id,
        count(*) as attempts,
        case
            when sum(case when delivery = 'delivered' then 1 else 0 end) > 0 then 'delivered'
            when sum(case when delivery = 'undelivered' then 1 else 0 end) > 0 then 'undelivered'
            when
                sum(case when delivery in ('pending', 'unknown') then 1 else 0 end) > 0
                or sum(case when status = 'pending_final' then 1 else 0 end) > 0
                then 'not_final'
            when sum(case when status = 'ambiguous_match' then 1 else 0 end) > 0 then 'ambiguous'
            else 'no_carrier_record'
        end as delivery
    from message_rows
    group by message_key
)

select
    p.genesys_campaign_id,
    o.wave_id,
    o.channel,
    o.time_zone,
    o.local_send_date,
    o.slot,
    o.wave_start_utc,
    count(*) as messages,
    cast(sum(p.attempts) as bigint) as attempts,
    sum(case when p.delivery = 'delivered' then 1 else 0 end) as delivered,
    sum(case when p.delivery = 'undelivered' then 1 else 0 end) as undelivered,
    sum(case when p.delivery = 'not_final' then 1 else 0 end) as not_final,
    sum(case when p.delivery = 'ambiguous' then 1 else 0 end) as ambiguous,
    sum(case when p.delivery = 'no_carrier_record' then 1 else 0 end) as no_carrier_record,
    round(1.0 * sum(case when p.delivery = 'delivered' then 1 else 0 end) / count(*), 4)
        as delivery_rate
from per_message as p
inner join outbox as o on p.message_key = o.message_key
group by
    p.genesys_campaign_id, o.wave_id, o.channel, o.time_zone, o.local_send_date, o.slot,
    o.wave_start_utc
