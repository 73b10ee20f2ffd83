-- Issue 11: the phone cache. One row per (parser, raw value, default region) ever parsed:
-- parser = phonenumbers version (another version parses again); e164 null unless the number
-- can take SMS; rule/reason as in quarantine (null/'' when fine); zones = phonenumbers' raw
-- time zones joined by '|'; line = E.164 of any valid number; number_type = mobile,
-- fixed_line, fixed_or_mobile (every +1 number), toll_free, ... (see tasks/phones.py).
-- A warm run parses only the raw values it does not find here. Rows are only ever added;
-- a (parser, raw, region) written twice by racing runs is read once.
create table phone_cache (
    parser varchar not null,
    raw varchar not null,
    region varchar not null,
    e164 varchar,
    rule varchar,
    reason varchar,
    zones varchar,
    calling_code integer,
    line varchar,
    number_type varchar
);
