-- The audit log (docs/decisions/022): who viewed patient data or acted on the pipeline, what,
-- when, from where and what came of it. Append-only and hash-chained: each entry's hash
-- covers the previous entry's hash and its own content, so an edit or a deletion breaks the
-- chain at that entry (`carebus audit verify`).
CREATE SCHEMA IF NOT EXISTS carebus_audit;

CREATE TABLE carebus_audit.entry (
    -- Gap-free: assigned under the head row's lock, one after the head.
    seq         bigint      PRIMARY KEY,
    at          timestamptz NOT NULL,
    actor       text        NOT NULL,
    origin      text        NOT NULL,
    action      text        NOT NULL,
    target_kind text        NOT NULL,
    target_id   text        NOT NULL,
    outcome     text        NOT NULL,
    -- Canonical JSON (sorted keys), hashed as stored: no payload values, ever.
    detail      text        NOT NULL DEFAULT '{}',
    prev_hash   text        NOT NULL,
    hash        text        NOT NULL
);

CREATE INDEX entry_at_idx ON carebus_audit.entry (at);
CREATE INDEX entry_actor_idx ON carebus_audit.entry (actor, seq);
CREATE INDEX entry_action_idx ON carebus_audit.entry (action, seq);

-- The chain's head, one row: every writer locks it (FOR UPDATE) to append, so writers from
-- any service or replica take turns and the chain never forks. It also says where the
-- chain ends: a deleted tail no longer matches it.
CREATE TABLE carebus_audit.head (
    one   boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq   bigint  NOT NULL,
    hash  text    NOT NULL
);
INSERT INTO carebus_audit.head (seq, hash) VALUES (0, repeat('0', 64));

CREATE FUNCTION carebus_audit.refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'carebus_audit.% is append-only (% refused)', TG_TABLE_NAME, TG_OP;
END
$$;

CREATE TRIGGER entry_append_only
    BEFORE UPDATE OR DELETE ON carebus_audit.entry
    FOR EACH ROW EXECUTE FUNCTION carebus_audit.refuse_change();
CREATE TRIGGER entry_no_truncate
    BEFORE TRUNCATE ON carebus_audit.entry
    FOR EACH STATEMENT EXECUTE FUNCTION carebus_audit.refuse_change();
-- The head moves forward one entry at a time; it is never removed.
CREATE FUNCTION carebus_audit.head_forward() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq <> OLD.seq + 1 THEN
        RAISE EXCEPTION 'carebus_audit.head moves one entry forward at a time';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER head_forward
    BEFORE UPDATE ON carebus_audit.head
    FOR EACH ROW EXECUTE FUNCTION carebus_audit.head_forward();
CREATE TRIGGER head_kept
    BEFORE DELETE ON carebus_audit.head
    FOR EACH ROW EXECUTE FUNCTION carebus_audit.refuse_change();
CREATE TRIGGER head_no_truncate
    BEFORE TRUNCATE ON carebus_audit.head
    FOR EACH STATEMENT EXECUTE FUNCTION carebus_audit.refuse_change();
