-- Exactly once in effect: which requests this consumer has handled, and where each journal
-- stands in the ERP. Both are written in the transaction that records the posting.

CREATE TABLE carebus_erp_poster.inbox (
    consumer     text        NOT NULL,
    event_id     text        NOT NULL,
    journal_id   text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    -- How often JetStream delivered it again after it was handled (a crash before the ack).
    redeliveries integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (consumer, event_id)
);

CREATE INDEX inbox_journal_idx ON carebus_erp_poster.inbox (journal_id);

CREATE TABLE carebus_erp_poster.journal_status (
    journal_id      text        PRIMARY KEY,
    connector       text        NOT NULL,
    -- Bumped when the ERP rejects an attempt; part of the next attempt's idempotency key.
    attempt         integer     NOT NULL DEFAULT 0,
    status          text        NOT NULL CHECK (status IN ('pending', 'confirmed', 'rejected')),
    event_id        text        NOT NULL,
    site            text        NOT NULL,
    correlation_id  text        NOT NULL,
    entity_version  bigint      NOT NULL,
    stream_seq      bigint      NOT NULL,
    subject         text        NOT NULL,
    erp_request_id  text,
    posted_at       timestamptz,
    confirmed_at    timestamptz,
    rejected_at     timestamptz,
    document_number text,
    fiscal_period   text,
    error_code      text,
    error_message   text,
    next_check_at   timestamptz,
    checks          integer     NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX journal_status_pending_idx
    ON carebus_erp_poster.journal_status (next_check_at) WHERE status = 'pending';
