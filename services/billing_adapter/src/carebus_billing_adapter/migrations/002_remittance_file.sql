-- 835 files already posted, by normalised content digest. JetStream forgets message ids after
-- its 24 h duplicate window; this table recognises a re-delivered file weeks later.
CREATE TABLE IF NOT EXISTS carebus_billing_adapter.remittance_file (
    digest               text        PRIMARY KEY,
    first_seen_at        timestamptz NOT NULL DEFAULT now(),
    last_seen_at         timestamptz NOT NULL DEFAULT now(),
    deliveries           integer     NOT NULL DEFAULT 1,
    origin               text        NOT NULL,
    transactions         integer     NOT NULL,
    claims               integer     NOT NULL,
    payment_total_minor  bigint      NOT NULL,
    events               integer     NOT NULL
);
