-- reconcile_billing_period: one row per carrier x invoice period (period_end inclusive) x
-- currency: the carrier's invoice total (carrier_invoices, all categories) beside the sum of
-- the carrier's own per-message records sent in the period (final and provisional prices) and
-- the reconciliation statuses of those messages. Calendar months holding carrier records but
-- no invoice line appear with status no_invoice. status: agrees | differs | no_invoice.
create or replace view reconcile_billing_period as
with invoices_source as (
    select carrier, period_start, period_end, category, count, amount_micros, currency
    from carrier_invoices
),

message_rows as (
    select carrier, carrier_message_id, carrier_sent_at_utc, price_micros, price_currency,
        price_final, status, message_key
    from reconcile_message
    where carrier is not null
),

invoice_periods as (
    select
        carrier,
        period_start,
        period_end,
        currency,
        cast(sum(amount_micros) as bigint) as invoiced_micros,
        cast(sum(count) as bigint) as invoiced_count
    from invoices_source
    group by carrier, period_start, period_end, currency
),

uninvoiced_months as (
    select distinct
        m.carrier,
        cast(date_trunc('month', m.carrier_sent_at_utc) as date) as period_start,
        cast(date_trunc('month', m.carrier_sent_at_utc) + interval '1 month' - interval '1 day'
            as date) as period_end,
        m.price_currency as currency
    from message_rows as m
    where not exists (
        select 1 from invoice_periods as p
        where
            p.carrier = m.carrier
            and cast(m.carrier_sent_at_utc as date) between p.period_start and p.period_end
    )
),

periods as (
    select carrier, period_start, period_end, currency, invoiced_micros, invoiced_count
    from invoice_periods
    union all
    select carrier, period_start, period_end, currency, cast(null as bigint), cast(null as bigint)
    from uninvoiced_months
),

per_period as (
    select
        p.carrier,
        p.period_start,
        p.period_end,
        p.currency,
        p.invoiced_micros,
        p.invoiced_count,
        count(m.carrier_message_id) as carrier_messages,
        cast(coalesce(sum(case when m.price_final then m.price_micros end), 0) as bigint)
            as records_final_micros,
        cast(coalesce(sum(case when not m.price_final then m.price_micros end), 0) as bigint)
            as records_provisional_micros,
        sum(case when m.price_micros is null then 1 else 0 end) as records_unpriced,
        sum(case when m.status = 'matched' then 1 else 0 end) as matched,
        sum(case when m.status = 'billed_not_attempted' then 1 else 0 end) as billed_not_attempted,
        cast(coalesce(sum(case when m.status = 'billed_not_attempted' then m.price_micros end), 0)
            as bigint) as billed_not_attempted_micros,
        sum(case when m.status = 'price_mismatch' then 1 else 0 end) as price_mismatch,
        sum(case when m.status = 'segment_mismatch' then 1 else 0 end) as segment_mismatch,
        sum(case when m.status = 'pending_final' then 1 else 0 end) as pending_final,
        sum(case when m.status = 'ambiguous_match' then 1 else 0 end) as ambiguous_match
    from periods as p
    left join message_rows as m
        on
            p.carrier = m.carrier
            and (m.price_currency = p.currency or m.price_currency is null)
            and cast(m.carrier_sent_at_utc as date) between p.period_start and p.period_end
    group by
        p.carrier, p.period_start, p.period_end, p.currency, p.invoiced_micros, p.invoiced_count
)

select
    carrier,
    period_start,
    period_end,
    currency,
    invoiced_micros,
    invoiced_count,
    carrier_messages,
    records_final_micros,
    records_provisional_micros,
    records_unpriced,
    cast(invoiced_micros - records_final_micros - records_provisional_micros as bigint)
        as difference_micros,
    matched,
    billed_not_attempted,
    billed_not_attempted_micros,
    price_mismatch,
    segment_mismatch,
    pending_final,
    ambiguous_match,
    case
        when invoiced_micros is null then 'no_invoice'
        when invoiced_micros = records_final_micros + records_provisional_micros
            and records_unpriced = 0 then 'agrees'
        else 'differs'
    end as status
from per_period
