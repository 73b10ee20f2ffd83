-- Genesys outcomes (issue 8): the wrap-up code Genesys recorded on a campaign attempt
-- (OUTBOUND-MESSAGE-SENT, OUTBOUND-MESSAGE-FAILED, ...; unknown codes are kept raw).
-- genesys_error_code stays the code of a refused add (state rejected).
alter table messages add column genesys_wrapup_code varchar;
