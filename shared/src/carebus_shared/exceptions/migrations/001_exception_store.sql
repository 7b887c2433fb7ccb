CREATE SCHEMA IF NOT EXISTS carebus_exceptions;

CREATE TABLE carebus_exceptions.exception_record (
    id              bigserial   PRIMARY KEY,
    -- Recording the same failure again (a redelivery, a re-sent file) must not add a row.
    dedupe_key      text        NOT NULL UNIQUE,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    stage           text        NOT NULL,
    category        text        NOT NULL CHECK (category IN
                        ('contract', 'masterdata', 'mapping', 'erp_rejection', 'transport')),
    reason          text        NOT NULL,
    message         text        NOT NULL,
    source          text        NOT NULL,
    site            text,
    event_id        text,
    -- Where the original lives in JetStream, when it does: re-drive republishes it.
    stream          text,
    stream_seq      bigint,
    subject         text,
    content_type    text,
    raw             bytea,
    headers         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status          text        NOT NULL DEFAULT 'open'
                        CHECK (status IN ('open', 'redriven', 'discarded')),
    resolved_at     timestamptz,
    resolved_by     text,
    resolution_note text
);

CREATE INDEX exception_record_open_idx
    ON carebus_exceptions.exception_record (stage, category, recorded_at)
    WHERE status = 'open';
