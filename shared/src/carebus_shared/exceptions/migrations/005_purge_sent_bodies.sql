-- Retention (docs/decisions/028): a corrected body sent for a record is PHI like its raw
-- input and is purged with it. The history stays append-only but for that one change:
-- sent_body set to NULL, every other column as it was (the hash and size stay).
CREATE OR REPLACE FUNCTION carebus_exceptions.refuse_action_update() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.sent_body IS NULL AND OLD.sent_body IS NOT NULL
       AND (NEW.id, NEW.record_id, NEW.at, NEW.actor, NEW.action, NEW.outcome,
            NEW.sent_sha256, NEW.sent_bytes, NEW.note)
           IS NOT DISTINCT FROM
           (OLD.id, OLD.record_id, OLD.at, OLD.actor, OLD.action, OLD.outcome,
            OLD.sent_sha256, OLD.sent_bytes, OLD.note) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'exception_action is append-only';
END
$$;
