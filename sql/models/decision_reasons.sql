-- decision_reasons: one row per run x status x reason, with the run's as-of time.
create or replace view decision_reasons as
with decisions_with_run as (
    select d.run_id, r.as_of_utc, r.dry_run, d.status, d.reason, d.channel
    from decisions as d
    inner join runs as r on d.run_id = r.run_id
)

select
    run_id,
    as_of_utc,
    dry_run,
    status,
    reason,
    sum(case when channel = 'sms' then 1 else 0 end) as sms,
    sum(case when channel = 'email' then 1 else 0 end) as email,
    count(*) as decisions
from decisions_with_run
group by run_id, as_of_utc, dry_run, status, reason;
