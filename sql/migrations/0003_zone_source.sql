-- Zones per customer (issue 7): which signal gave the candidate zones, all of them, and the
-- send time in every candidate zone (send_at_local is the wall time in the first one only).
-- decisions.zone_source: preferred | postal_code | phone | country | unknown.
alter table decisions add column zone_source varchar;
alter table decisions add column candidate_zones varchar;
alter table decisions add column send_at_local_by_zone varchar;
alter table messages add column send_at_local_by_zone varchar;
