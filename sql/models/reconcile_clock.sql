-- reconcile_clock: one row: as_of_utc = the latest carrier_records.loaded_at_utc (1970-01-01
-- when there is none), the instant reconcile_message judges the 72 h finality window against.
create or replace view reconcile_clock as
with carrier_loads as (
    select loaded_at_utc from carrier_records
)

select coalesce(max(loaded_at_utc), timestamp '1970-01-01 00:00:00') as as_of_utc
from carrier_loads
