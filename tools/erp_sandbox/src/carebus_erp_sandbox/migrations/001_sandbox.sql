-- The ERP sandbox's own schema: its chart of accounts and the journals it accepted.
CREATE SCHEMA IF NOT EXISTS carebus_erp_sandbox;

CREATE TABLE carebus_erp_sandbox.account (
    code     text        PRIMARY KEY,
    active   boolean     NOT NULL DEFAULT true,
    added_at timestamptz NOT NULL DEFAULT now()
);

CREATE SEQUENCE carebus_erp_sandbox.document_seq;

CREATE TABLE carebus_erp_sandbox.journal (
    request_id      text        PRIMARY KEY,
    -- A second request with the same key gets the stored receipt, never a second journal.
    idempotency_key text        NOT NULL UNIQUE,
    body_hash       text        NOT NULL,
    journal_id      text        NOT NULL,
    company         text        NOT NULL,
    posting_date    date        NOT NULL,
    body            jsonb       NOT NULL,
    status          text        NOT NULL CHECK (status IN ('pending', 'confirmed', 'rejected')),
    accepted_at     timestamptz NOT NULL DEFAULT now(),
    decide_after    timestamptz NOT NULL,
    decided_at      timestamptz,
    document_number text        UNIQUE,
    fiscal_period   text,
    error_code      text,
    error_message   text,
    replays         integer     NOT NULL DEFAULT 0
);

CREATE INDEX journal_journal_id_idx ON carebus_erp_sandbox.journal (journal_id);
CREATE INDEX journal_pending_idx ON carebus_erp_sandbox.journal (decide_after)
    WHERE status = 'pending';
