-- The claim index (docs/decisions/021): claim id (the charges' encounter) -> the site and
-- location its charges were booked to, the patient account, and its charges. Written by the
-- validation of charges; read to book remittance events to their claim's site.
SET LOCAL search_path TO carebus_masterdata_validator;

CREATE TABLE claim_index (
    claim_id        text        PRIMARY KEY,
    site            text        NOT NULL,
    location_id     text,
    patient_ref     text        NOT NULL,
    first_event_id  text        NOT NULL,
    indexed_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per charge event (a charge and its reversal are two rows, the reversal negative),
-- keyed by the event id so that a redelivered charge is recorded once.
CREATE TABLE claim_charge (
    event_id      text        PRIMARY KEY,
    claim_id      text        NOT NULL,
    charge_id     text        NOT NULL,
    amount_minor  bigint      NOT NULL,
    currency      text        NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX claim_charge_claim_idx ON claim_charge (claim_id);
