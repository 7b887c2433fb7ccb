-- Every action on a record (a re-drive, a discard, one record of a bulk re-drive), who took
-- it, when, what was sent and what came of it: appended, never overwritten. The record's
-- status and resolved_* columns still say where it stands (docs/decisions/019).
CREATE TABLE carebus_exceptions.exception_action (
    id          bigserial   PRIMARY KEY,
    -- A record removed (retention) takes its history with it.
    record_id   bigint      NOT NULL
                    REFERENCES carebus_exceptions.exception_record (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    action      text        NOT NULL CHECK (action IN ('redrive', 'bulk_redrive', 'discard')),
    outcome     text        NOT NULL,
    -- The corrected input sent instead of the stored one, when one was (PHI, like raw).
    sent_sha256 text,
    sent_bytes  integer,
    sent_body   bytea,
    note        text        NOT NULL DEFAULT ''
);

CREATE INDEX exception_action_record_idx
    ON carebus_exceptions.exception_action (record_id, id);

CREATE FUNCTION carebus_exceptions.refuse_action_update() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'exception_action is append-only';
END
$$;

CREATE TRIGGER exception_action_append_only
    BEFORE UPDATE ON carebus_exceptions.exception_action
    FOR EACH ROW EXECUTE FUNCTION carebus_exceptions.refuse_action_update();

-- What was resolved before this table existed keeps its one line of history.
INSERT INTO carebus_exceptions.exception_action (record_id, at, actor, action, outcome, note)
SELECT id, coalesce(resolved_at, recorded_at), coalesce(resolved_by, 'unknown'),
       CASE status WHEN 'discarded' THEN 'discard' ELSE 'redrive' END, status,
       coalesce(resolution_note, '')
  FROM carebus_exceptions.exception_record
 WHERE status <> 'open'
 ORDER BY id;

-- The exceptions API lists newest first (keyset on id) under any of these filters, and
-- counts what matches.
CREATE INDEX exception_record_status_idx ON carebus_exceptions.exception_record (status, id);
CREATE INDEX exception_record_site_idx ON carebus_exceptions.exception_record (site, id);
CREATE INDEX exception_record_reason_idx ON carebus_exceptions.exception_record (reason, id);
CREATE INDEX exception_record_category_idx
    ON carebus_exceptions.exception_record (category, id);
CREATE INDEX exception_record_recorded_idx
    ON carebus_exceptions.exception_record (recorded_at);
-- A stage is asked for by its name ('masterdata-validator-billing') or its contract stage
-- ('masterdata_validator'): one normalised spelling serves both (equality and prefix).
CREATE INDEX exception_record_stage_idx
    ON carebus_exceptions.exception_record (replace(stage, '-', '_') text_pattern_ops);
