-- The fencing read every mapped batch starts with, as a function that never scans the whole
-- table. As a plain statement its plan was a sequential scan whenever the statistics were
-- older than the table: a generic plan cached while entity_version was small, or a plan
-- for 100 keys on a table grown since it was last analyzed (the default estimate for each
-- key of a non-unique index is 0.5 % of the rows). A remittance file grows it fast: 36 ms
-- per batch at ~60,000 entities, the database's costliest statement in a 10,000-claim 835
-- (docs/decisions/031, addendum). The key index is always the right path for a batch's
-- keys, so sequential scans are off inside this function only.
CREATE FUNCTION carebus_mapper.applied_versions(p_keys text[])
RETURNS TABLE (
    site text, entity text, entity_key text, entity_version bigint, source_event_id text,
    state text
)
LANGUAGE sql STABLE
SET enable_seqscan = off
AS $$
    SELECT v.site, v.entity, v.entity_key, v.entity_version, v.source_event_id, v.state
      FROM carebus_mapper.entity_version AS v
     WHERE v.entity_key = ANY(p_keys)
$$;
