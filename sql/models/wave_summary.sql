-- wave_summary: one row per wave (channel x zone x local date x slot) and message state.
create or replace view wave_summary as
with messages_in_waves as (
    select wave_id, channel, time_zone, local_send_date, slot, wave_start_utc, state, send_at_local
    from messages
)

select
    wave_id,
    channel,
    time_zone,
    local_send_date,
    slot,
    wave_start_utc,
    state,
    count(*) as messages,
    min(send_at_local) as first_send_local,
    max(send_at_local) as last_send_local
from messages_in_waves
group by wave_id, channel, time_zone, local_send_date, slot, wave_start_utc, state;
