-- The ops console owns this schema; no other service reads or writes it. Every table is a
-- projection of the streams, rebuilt from them by `carebus ops rebuild` (docs/decisions/018).
CREATE SCHEMA IF NOT EXISTS carebus_ops;

-- One row per event seen: a step of one business entity's journey. The event id is unique,
-- so a redelivered or replayed event adds nothing.
CREATE TABLE carebus_ops.step (
    event_id        text        PRIMARY KEY,
    kind            text        NOT NULL,  -- appointment, charge, claim, payment, adjustment, journal
    entity_key      text        NOT NULL,
    site            text        NOT NULL,
    -- received, validated, mapped, posted, confirmed, rejected
    stage           text        NOT NULL,
    event_type      text        NOT NULL,
    status          text,                  -- the entity's status after it (appointment, claim)
    entity_version  bigint      NOT NULL,
    occurred_at     timestamptz NOT NULL,  -- in the source system
    recorded_at     timestamptz NOT NULL,  -- by carebus (or the ERP, for posted/confirmed)
    causation_id    text,
    stream          text        NOT NULL,
    stream_seq      bigint      NOT NULL,
    subject         text        NOT NULL,
    erp_document    text                   -- the ERP's document number (confirmed) or request id
);
CREATE INDEX step_entity_idx ON carebus_ops.step (kind, entity_key);
CREATE INDEX step_causation_idx ON carebus_ops.step (causation_id);
CREATE INDEX step_stage_idx ON carebus_ops.step (kind, stage, recorded_at);

-- Exceptions from the EXCEPTIONS stream, pointing at the event that failed (its step is
-- found at read time: the streams are read by separate consumers, in no common order).
CREATE TABLE carebus_ops.exception_step (
    event_id        text        PRIMARY KEY,
    failed_event_id text,
    site            text        NOT NULL,
    stage           text        NOT NULL,
    reason          text        NOT NULL,  -- the category
    reason_code     text        NOT NULL,
    recorded_at     timestamptz NOT NULL,
    stream          text        NOT NULL,  -- where the failed message is
    stream_seq      bigint      NOT NULL,
    subject         text        NOT NULL
);
CREATE INDEX exception_step_failed_idx ON carebus_ops.exception_step (failed_event_id);

-- Links between entities, both directions stored (appointment <-> charge, claim <-> charge,
-- claim <-> payment, claim/charge <-> adjustment).
CREATE TABLE carebus_ops.link (
    kind        text NOT NULL,
    entity_key  text NOT NULL,
    other_kind  text NOT NULL,
    other_key   text NOT NULL,
    PRIMARY KEY (kind, entity_key, other_kind, other_key)
);

-- A journal's source events (the mapper names them), resolved to entities at read time.
CREATE TABLE carebus_ops.journal_source (
    journal_id      text NOT NULL,
    source_event_id text NOT NULL,
    PRIMARY KEY (journal_id, source_event_id)
);
CREATE INDEX journal_source_event_idx ON carebus_ops.journal_source (source_event_id);

-- Sites master data registers: each location's site_code, as of its newest change. A site
-- with an active location is registered; metric labels use those, else _other.
CREATE TABLE carebus_ops.site_location (
    location_id     text    PRIMARY KEY,
    site            text    NOT NULL,
    active          boolean NOT NULL,
    entity_version  bigint  NOT NULL
);
