-- reconcile_message: one row per Genesys SMS attempt (deduplicated over sources by
-- message_key x attempted_at_utc; outcome sent, unknown, or failed with a carrier record)
-- and/or logical carrier message (carrier x carrier_message_id, parts summed), side by side.
-- A matched pair is one row; an unmatched or ambiguous attempt or carrier message is a row
-- with the other side null. Matching (i9-design.md): the carrier message id where the
-- attempt carries it; else recipient (E.164) + carrier sent_at within [attempted_at - 2 min,
-- attempted_at + 15 min] + body hash where both sides have one. A match needs exactly one
-- candidate on both sides; otherwise every row involved is ambiguous_match (never guessed).
-- as_of_utc (reconcile_clock) = the latest carrier_records.loaded_at_utc (1970 when there is
-- none): a row whose send is less than 72 h before it and is not final is pending_final.
-- tasks/reconcile.py reconcile_days evaluates this same text over one day's padded window
-- (the two import CTEs reading attempts and carrier_records point at window tables).
-- status (first that applies): ambiguous_match | pending_final | attempted_not_billed |
-- billed_not_attempted | segment_mismatch | price_mismatch | matched. delivery (for the
-- outbox): delivered | undelivered | pending | unknown on unambiguous matched rows, else null.
create or replace view reconcile_message as
with attempts_source as (
    select
        message_key, customer_id, invoice_ids, channel, source, genesys_contact_list_id,
        genesys_campaign_id, attempted_at_utc, wrapup_code, outcome_class, to_address,
        body_sha256, segments, carrier_message_id, attempt_day
    from attempts
),

carrier_source as (
    select
        carrier, carrier_message_id, part_index, parts_total, direction, to_address,
        status_class, error_code, num_segments, price_micros, price_currency, price_final,
        sent_at_utc, sender_reference, body_sha256, loaded_at_utc
    from carrier_records
),

rates_source as (
    select carrier, destination_prefix, price_micros_per_segment, currency, valid_from, valid_to
    from carrier_rates
),

clock as (
    select as_of_utc from reconcile_clock
),

sms_rows as materialized (
    select
        row_number() over () as attempt_id,
        message_key, attempted_at_utc, customer_id, invoice_ids, genesys_contact_list_id,
        genesys_campaign_id, wrapup_code, outcome_class, to_address, body_sha256, segments,
        carrier_message_id, attempt_day
    from attempts_source
    where channel = 'sms' and outcome_class in ('sent', 'unknown', 'failed')
),

-- attempts rows whose key (message_key x attempted_at_utc, both not null) occurs more than
-- once: only those are aggregated; every other row is its own group and passes as it is.
-- attempt_id numbers the rows as read (one scan, streamed); a group takes its least row's.
sms_repeats as materialized (
    select message_key, attempted_at_utc
    from sms_rows
    group by message_key, attempted_at_utc
    having count(*) > 1
),

sms_attempts as not materialized (
    select
        a.attempt_id, a.message_key, a.attempted_at_utc, a.customer_id, a.invoice_ids,
        a.genesys_contact_list_id, a.genesys_campaign_id, a.wrapup_code, a.outcome_class,
        a.to_address, a.body_sha256, a.segments, a.carrier_message_id, a.attempt_day
    from sms_rows as a
    left join sms_repeats as r
        on r.message_key = a.message_key and r.attempted_at_utc = a.attempted_at_utc
    where r.message_key is null
    union all
    select
        min(a.attempt_id) as attempt_id,
        a.message_key,
        a.attempted_at_utc,
        max(a.customer_id) as customer_id,
        max(a.invoice_ids) as invoice_ids,
        max(a.genesys_contact_list_id) as genesys_contact_list_id,
        max(a.genesys_campaign_id) as genesys_campaign_id,
        max(a.wrapup_code) as wrapup_code,
        case min(
            case a.outcome_class when 'sent' then 1 when 'unknown' then 2 else 3 end
        )
            when 1 then 'sent' when 2 then 'unknown' else 'failed'
        end as outcome_class,
        max(a.to_address) as to_address,
        max(a.body_sha256) as body_sha256,
        max(a.segments) as segments,
        max(a.carrier_message_id) as carrier_message_id,
        min(a.attempt_day) as attempt_day
    from sms_rows as a
    inner join sms_repeats as r
        on r.message_key = a.message_key and r.attempted_at_utc = a.attempted_at_utc
    group by a.message_key, a.attempted_at_utc
),

outbound_records as materialized (
    select row_number() over () as row_id, *
    from carrier_source
    where direction is null or direction like 'outbound%'
),

referenced_sessions as (
    select
        *,
        lag(sent_at_utc) over (
            partition by carrier, sender_reference, to_address
            order by sent_at_utc, carrier_message_id, part_index
        ) as previous_sent_at_utc
    from outbound_records
    where sender_reference is not null
),

carrier_grouped as not materialized (
    select
        row_id, carrier, carrier_message_id, part_index, parts_total, to_address,
        status_class, error_code, num_segments, price_micros, price_currency, price_final,
        sent_at_utc, sender_reference, body_sha256,
        carrier_message_id as group_key
    from outbound_records
    where sender_reference is null
    union all
    select
        row_id, carrier, carrier_message_id, part_index, parts_total, to_address,
        status_class, error_code, num_segments, price_micros, price_currency, price_final,
        sent_at_utc, sender_reference, body_sha256,
        'ref:' || sender_reference || ':' || to_address || ':' || cast(
            sum(
                case
                    when
                        previous_sent_at_utc is null
                        or sent_at_utc > previous_sent_at_utc + interval '5 minutes'
                        then 1
                    else 0
                end
            ) over (
                partition by carrier, sender_reference, to_address
                order by sent_at_utc, carrier_message_id, part_index
                rows between unbounded preceding and current row
            ) as varchar
        ) as group_key
    from referenced_sessions
),

-- carrier groups of more than one row: only those are aggregated (carrier and group_key are
-- never null); a one-row group passes with the aggregates' one-row values. carrier_id is
-- the row's row_id, a group's its least row's
carrier_repeats as materialized (
    select carrier, group_key
    from carrier_grouped
    group by carrier, group_key
    having count(*) > 1
),

carrier_messages as not materialized (
    select
        g.row_id as carrier_id,
        g.carrier,
        g.group_key,
        carrier_message_id,
        sender_reference,
        to_address,
        sent_at_utc,
        case
            when status_class in ('delivered', 'accepted', 'pending', 'undelivered')
                then status_class
            else 'failed'
        end as status_class,
        error_code,
        cast(1 as bigint) as parts,
        greatest(cast(1 as bigint), coalesce(parts_total, 0), coalesce(num_segments, 0))
            as segments,
        cast(price_micros as bigint) as price_micros,
        price_currency,
        price_micros is not null and coalesce(price_final, false) as price_final,
        body_sha256
    from carrier_grouped as g
    left join carrier_repeats as r on r.carrier = g.carrier and r.group_key = g.group_key
    where r.carrier is null
    union all
    select
        min(g.row_id) as carrier_id,
        g.carrier,
        g.group_key,
        min(carrier_message_id) as carrier_message_id,
        max(sender_reference) as sender_reference,
        max(to_address) as to_address,
        min(sent_at_utc) as sent_at_utc,
        case max(
            case status_class
                when 'delivered' then 1 when 'accepted' then 2 when 'pending' then 3
                when 'undelivered' then 4 else 5
            end
        )
            when 1 then 'delivered' when 2 then 'accepted' when 3 then 'pending'
            when 4 then 'undelivered' else 'failed'
        end as status_class,
        max(error_code) as error_code,
        count(*) as parts,
        greatest(
            count(*),
            coalesce(max(parts_total), 0),
            case when count(*) = 1 then coalesce(max(num_segments), 0) else 0 end
        ) as segments,
        cast(sum(price_micros) as bigint) as price_micros,
        max(price_currency) as price_currency,
        count(price_micros) = count(*) and bool_and(coalesce(price_final, false)) as price_final,
        max(body_sha256) as body_sha256
    from carrier_grouped as g
    inner join carrier_repeats as r on r.carrier = g.carrier and r.group_key = g.group_key
    group by g.carrier, g.group_key
),

id_parts as (
    select distinct a.attempt_id, g.carrier, g.group_key
    from sms_attempts as a
    inner join carrier_grouped as g on a.carrier_message_id = g.carrier_message_id
),

id_candidates as (
    select p.attempt_id, c.carrier_id
    from id_parts as p
    inner join carrier_messages as c on p.carrier = c.carrier and p.group_key = c.group_key
),

window_candidates as (
    select
        a.attempt_id, c.carrier_id,
        c.sender_reference is not null as sender_reference_matched
    from sms_attempts as a
    inner join carrier_messages as c
        on
            a.to_address = c.to_address
            and c.sent_at_utc >= a.attempted_at_utc - interval '2 minutes'
            and c.sent_at_utc <= a.attempted_at_utc + interval '15 minutes'
            and (a.body_sha256 is null or c.body_sha256 is null or a.body_sha256 = c.body_sha256)
            and (c.sender_reference is null or c.sender_reference = a.message_key)
    where a.carrier_message_id is null
),

candidates as materialized (
    select attempt_id, carrier_id, 'carrier_message_id' as match_method
    from id_candidates
    union all
    select
        w.attempt_id, w.carrier_id,
        case
            when w.sender_reference_matched then 'sender_reference' else 'recipient_window'
        end as match_method
    from window_candidates as w
    left join (select distinct carrier_id from id_candidates) as t on w.carrier_id = t.carrier_id
    where t.carrier_id is null
),

attempt_counts as (
    select attempt_id, count(*) as candidates
    from candidates
    group by attempt_id
),

carrier_counts as (
    select carrier_id, count(*) as candidates
    from candidates
    group by carrier_id
),

-- every candidate pair with the candidate counts of its two sides: a pair is a match when
-- both are 1; every other pair makes both of its rows ambiguous
counted as materialized (
    select
        c.attempt_id,
        c.carrier_id,
        c.match_method,
        a.candidates as attempt_candidates,
        s.candidates as carrier_candidates
    from candidates as c
    inner join attempt_counts as a on c.attempt_id = a.attempt_id
    inner join carrier_counts as s on c.carrier_id = s.carrier_id
),

attempt_pairing as (
    select
        attempt_id,
        attempt_candidates as candidates,
        case when carrier_candidates = 1 then carrier_id end as carrier_id,
        case when carrier_candidates = 1 then match_method end as match_method,
        carrier_candidates <> 1 as ambiguous
    from counted
    where attempt_candidates = 1
    union all
    select attempt_id, candidates, null as carrier_id, null as match_method, true as ambiguous
    from attempt_counts
    where candidates > 1
),

carrier_pairing as (
    select carrier_id, carrier_candidates as candidates, attempt_candidates <> 1 as ambiguous
    from counted
    where carrier_candidates = 1
    union all
    select carrier_id, candidates, true as ambiguous
    from carrier_counts
    where candidates > 1
),

ambiguous_pairs as (
    select attempt_id, carrier_id
    from counted
    where attempt_candidates > 1 or carrier_candidates > 1
),

attempt_candidate_ids as (
    select
        i.attempt_id,
        string_agg(
            m.carrier || ':' || m.carrier_message_id, ',' order by m.carrier, m.carrier_message_id
        ) as candidate_ids
    from ambiguous_pairs as i
    inner join carrier_messages as m on i.carrier_id = m.carrier_id
    group by i.attempt_id
),

carrier_candidate_ids as (
    select
        i.carrier_id,
        string_agg(a.message_key, ',' order by a.message_key, a.attempted_at_utc) as candidate_ids
    from ambiguous_pairs as i
    inner join sms_attempts as a on i.attempt_id = a.attempt_id
    group by i.carrier_id
),

attempt_rows as (
    select
        a.*,
        p.carrier_id as paired_carrier_id,
        p.match_method,
        coalesce(p.ambiguous, false) as ambiguous,
        coalesce(p.candidates, 0) as candidates
    from sms_attempts as a
    left join attempt_pairing as p on a.attempt_id = p.attempt_id
    where a.outcome_class in ('sent', 'unknown') or p.candidates is not null
),

carrier_rows as (
    select
        c.*,
        coalesce(p.ambiguous, false) as ambiguous,
        coalesce(p.candidates, 0) as candidates
    from carrier_messages as c
    left join carrier_pairing as p on c.carrier_id = p.carrier_id
    where p.carrier_id is null or p.ambiguous
),

sides as (
    select
        a.message_key,
        a.customer_id,
        a.invoice_ids,
        a.genesys_campaign_id,
        a.genesys_contact_list_id,
        a.attempted_at_utc,
        a.attempt_day,
        a.wrapup_code,
        a.outcome_class,
        a.to_address as attempt_to_address,
        a.segments as attempt_segments,
        a.carrier_message_id as attempt_carrier_message_id,
        c.carrier,
        c.carrier_message_id,
        c.sender_reference as carrier_sender_reference,
        c.to_address as carrier_to_address,
        c.sent_at_utc as carrier_sent_at_utc,
        c.status_class as carrier_status_class,
        c.error_code as carrier_error_code,
        c.parts as carrier_parts,
        c.segments as carrier_segments,
        c.price_micros,
        c.price_currency,
        c.price_final,
        a.match_method,
        a.ambiguous,
        a.candidates,
        i.candidate_ids,
        a.attempted_at_utc as send_at_utc
    from attempt_rows as a
    left join carrier_messages as c on a.paired_carrier_id = c.carrier_id
    left join attempt_candidate_ids as i on a.ambiguous and a.attempt_id = i.attempt_id
    union all
    select
        cast(null as varchar) as message_key,
        cast(null as varchar) as customer_id,
        cast(null as varchar) as invoice_ids,
        cast(null as varchar) as genesys_campaign_id,
        cast(null as varchar) as genesys_contact_list_id,
        cast(null as timestamp) as attempted_at_utc,
        cast(null as date) as attempt_day,
        cast(null as varchar) as wrapup_code,
        cast(null as varchar) as outcome_class,
        cast(null as varchar) as attempt_to_address,
        cast(null as integer) as attempt_segments,
        cast(null as varchar) as attempt_carrier_message_id,
        c.carrier,
        c.carrier_message_id,
        c.sender_reference as carrier_sender_reference,
        c.to_address as carrier_to_address,
        c.sent_at_utc as carrier_sent_at_utc,
        c.status_class as carrier_status_class,
        c.error_code as carrier_error_code,
        c.parts as carrier_parts,
        c.segments as carrier_segments,
        c.price_micros,
        c.price_currency,
        c.price_final,
        cast(null as varchar) as match_method,
        c.ambiguous,
        c.candidates,
        i.candidate_ids,
        c.sent_at_utc as send_at_utc
    from carrier_rows as c
    left join carrier_candidate_ids as i on c.ambiguous and c.carrier_id = i.carrier_id
),

-- the rate of a carrier message depends only on its carrier, its send date and its address's
-- first rate_span characters (every rate prefix is a prefix of those), so the longest-prefix,
-- latest-valid_from choice is made once per distinct (carrier, day, address prefix) of the
-- carrier messages (a superset of the keys of sides' carrier rows)
rate_span as (
    select max(length(destination_prefix)) as prefix_length from rates_source
),

rate_lengths as (
    select distinct length(destination_prefix) as prefix_length from rates_source
),

rate_keys as (
    select distinct
        s.carrier,
        cast(s.sent_at_utc as date) as sent_day,
        substr(s.to_address, 1, span.prefix_length) as address_prefix
    from carrier_messages as s
    cross join rate_span as span
),

rated as (
    select
        k.carrier,
        k.sent_day,
        k.address_prefix,
        r.price_micros_per_segment,
        r.currency as rate_currency,
        row_number() over (
            partition by k.carrier, k.sent_day, k.address_prefix
            order by length(r.destination_prefix) desc, r.valid_from desc
        ) as rate_rank
    from rate_keys as k
    cross join rate_lengths as l
    inner join rates_source as r
        on
            k.carrier = r.carrier
            and substr(k.address_prefix, 1, l.prefix_length) = r.destination_prefix
            and k.sent_day >= r.valid_from
            and (r.valid_to is null or k.sent_day < r.valid_to)
),

checked as (
    select
        s.*,
        clock.as_of_utc,
        case
            when s.carrier_status_class = 'failed' then cast(0 as bigint)
            else cast(s.carrier_segments * r.price_micros_per_segment as bigint)
        end as expected_price_micros,
        r.rate_currency,
        s.send_at_utc > clock.as_of_utc - interval '72 hours' as inside_finality_window
    from sides as s
    cross join clock
    cross join rate_span as span
    left join rated as r
        on
            s.carrier = r.carrier
            and cast(s.carrier_sent_at_utc as date) = r.sent_day
            and substr(s.carrier_to_address, 1, span.prefix_length) = r.address_prefix
            and r.rate_rank = 1
),

flagged as (
    select
        *,
        case
            when message_key is null or carrier is null then cast(null as boolean)
            when attempt_segments is null or carrier_segments is null then cast(null as boolean)
            else attempt_segments = carrier_segments
        end as segments_match,
        case
            when carrier is null or expected_price_micros is null then cast(null as boolean)
            when not price_final then false
            when carrier_status_class = 'failed' then coalesce(price_micros, 0) = 0
            else price_micros = expected_price_micros and price_currency = rate_currency
        end as price_match,
        carrier is not null
        and carrier_status_class in ('delivered', 'undelivered', 'failed')
        and price_final as carrier_final
    from checked
)

select
    message_key,
    customer_id,
    invoice_ids,
    genesys_campaign_id,
    genesys_contact_list_id,
    attempted_at_utc,
    attempt_day,
    wrapup_code,
    outcome_class,
    attempt_to_address,
    attempt_segments,
    attempt_carrier_message_id,
    carrier,
    carrier_message_id,
    carrier_to_address,
    carrier_sent_at_utc,
    carrier_status_class,
    carrier_error_code,
    carrier_parts,
    carrier_segments,
    price_micros,
    price_currency,
    price_final,
    expected_price_micros,
    segments_match,
    price_match,
    match_method,
    ambiguous,
    candidates,
    candidate_ids,
    send_at_utc,
    cast(send_at_utc as date) as day,
    as_of_utc,
    case
        when ambiguous then 'ambiguous_match'
        when inside_finality_window and not carrier_final then 'pending_final'
        when carrier is null then 'attempted_not_billed'
        when message_key is null then 'billed_not_attempted'
        when segments_match = false then 'segment_mismatch'
        when price_match = false or not price_final then 'price_mismatch'
        else 'matched'
    end as status,
    case
        when ambiguous then 'candidates: ' || candidate_ids
        when inside_finality_window and not carrier_final then 'inside 72 h of the send'
        when carrier is null then 'no carrier record'
        when message_key is null then 'no Genesys attempt'
        when segments_match = false
            then 'segments: attempt ' || cast(attempt_segments as varchar)
            || ', carrier ' || cast(carrier_segments as varchar)
        when not price_final then 'price not final after 72 h'
        when price_match = false
            then 'price ' || cast(price_micros as varchar) || ' ' || coalesce(price_currency, '?')
            || ', expected ' || cast(expected_price_micros as varchar) || ' '
            || coalesce(rate_currency, '?')
        when expected_price_micros is null then 'no rate for the destination: price not checked'
    end as detail,
    case
        when ambiguous or message_key is null or carrier is null then cast(null as varchar)
        when carrier_status_class = 'delivered' then 'delivered'
        when carrier_status_class in ('undelivered', 'failed') then 'undelivered'
        when inside_finality_window then 'pending'
        else 'unknown'
    end as delivery
from flagged
