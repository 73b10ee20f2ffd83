-- Issue 11: on PostgreSQL every build run inserts three million decision rows at a million
-- customers, nearly all with a message key (an excluded decision keeps the key of the message
-- it would have been), and decisions_message_key took each of them as a random insert into
-- an index of every run's rows: about two thirds of the decisions COPY at 1M. What reads
-- decisions by message key reads planned decisions only (tasks.outbox.exclude_decisions, the
-- delivered-reminder questions of docs/warehouse.md), so the index keeps planned rows only
-- (about one in twelve). decisions_customer (the README's "why was this customer (not)
-- messaged?") stays.
drop index if exists decisions_message_key;
create index decisions_planned_message_key on decisions (message_key) where status = 'planned';
