-- Completed without charge (issue #19, docs/decisions/025): one work item per completed
-- appointment no charge named within its site's threshold. Not a projection (it points at
-- the exception record it opened), so `carebus ops rebuild` keeps it.
CREATE TABLE carebus_ops.charge_watch (
    appointment_id  text        PRIMARY KEY,
    site            text        NOT NULL,
    completed_at    timestamptz NOT NULL,  -- in the scheduling system
    completion_event_id text   NOT NULL,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    record_id       bigint,                -- its exception record (carebus_exceptions)
    resolved_at     timestamptz,
    -- charge_arrived, or no_longer_completed (the visit was re-opened or cancelled)
    resolution      text
);
CREATE INDEX charge_watch_open_idx ON carebus_ops.charge_watch (site) WHERE resolved_at IS NULL;

-- Each scheduled appointment's and posted charge's visit (same patient, site and day) as a
-- digest: a charge whose visit number the scheduling feed does not know still finds its
-- appointment. A projection like the others (rebuilt from the streams).
CREATE TABLE carebus_ops.visit (
    kind        text NOT NULL,  -- appointment or charge
    entity_key  text NOT NULL,
    visit_key   text NOT NULL,
    PRIMARY KEY (kind, entity_key, visit_key)
);
CREATE INDEX visit_key_idx ON carebus_ops.visit (visit_key, kind);
