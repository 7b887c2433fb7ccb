-- The system of record. Every record carries a version (the ETag) and an effective period
-- (valid_from .. valid_to, both inclusive, NULL = open). Records are never deleted:
-- deactivation sets active = false, and every change is in the audit table.
SET LOCAL search_path TO carebus_masterdata_validator;

CREATE TABLE cost_centre (
    cost_centre_id  text        PRIMARY KEY,
    name            text        NOT NULL,
    active          boolean     NOT NULL DEFAULT true,
    valid_from      date,
    valid_to        date,
    version         integer     NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      text        NOT NULL,
    CHECK (valid_to IS NULL OR valid_from IS NULL OR valid_from <= valid_to)
);

CREATE TABLE location (
    location_id       text        PRIMARY KEY,
    name              text        NOT NULL,
    site_code         text,
    address           jsonb,
    place_of_service  text        NOT NULL CHECK (place_of_service ~ '^[0-9]{2}$'),
    time_zone         text        NOT NULL,
    cost_centre_id    text        REFERENCES cost_centre,
    active            boolean     NOT NULL DEFAULT true,
    valid_from        date,
    valid_to          date,
    version           integer     NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    updated_by        text        NOT NULL,
    CHECK (valid_to IS NULL OR valid_from IS NULL OR valid_from <= valid_to)
);
CREATE INDEX location_site_idx ON location (site_code);

CREATE TABLE department (
    department_id   text        PRIMARY KEY,
    name            text        NOT NULL,
    cost_centre_id  text        NOT NULL REFERENCES cost_centre,
    location_id     text        REFERENCES location,
    active          boolean     NOT NULL DEFAULT true,
    valid_from      date,
    valid_to        date,
    version         integer     NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      text        NOT NULL,
    CHECK (valid_to IS NULL OR valid_from IS NULL OR valid_from <= valid_to)
);

CREATE TABLE provider (
    provider_id     text        PRIMARY KEY,
    npi             text        NOT NULL UNIQUE CHECK (npi ~ '^[0-9]{10}$'),
    name            text        NOT NULL,
    taxonomy_code   text,
    department_id   text        REFERENCES department,
    active          boolean     NOT NULL DEFAULT true,
    valid_from      date,
    valid_to        date,
    version         integer     NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      text        NOT NULL,
    CHECK (valid_to IS NULL OR valid_from IS NULL OR valid_from <= valid_to)
);

CREATE TABLE service (
    service_code    text        PRIMARY KEY,
    code_system     text        NOT NULL CHECK (code_system IN ('CPT', 'HCPCS')),
    description     text        NOT NULL,
    revenue_code    text        CHECK (revenue_code ~ '^[0-9]{4}$'),
    active          boolean     NOT NULL DEFAULT true,
    valid_from      date,
    valid_to        date,
    version         integer     NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      text        NOT NULL,
    CHECK (valid_to IS NULL OR valid_from IS NULL OR valid_from <= valid_to)
);

CREATE TABLE payer (
    payer_id        text        PRIMARY KEY,
    name            text        NOT NULL,
    payer_class     text        NOT NULL,
    active          boolean     NOT NULL DEFAULT true,
    valid_from      date,
    valid_to        date,
    version         integer     NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      text        NOT NULL,
    CHECK (valid_to IS NULL OR valid_from IS NULL OR valid_from <= valid_to)
);

-- A source system's code for an entity → the canonical id (e.g. epic-cadence's provider
-- "1234^SMITH^JOHN" → provider P-1). canonical_id is checked against its kind's table by
-- the API (it is polymorphic, so no foreign key).
CREATE TABLE cross_reference (
    source_system   text        NOT NULL,
    kind            text        NOT NULL,
    source_code     text        NOT NULL,
    canonical_id    text        NOT NULL,
    active          boolean     NOT NULL DEFAULT true,
    valid_from      date,
    valid_to        date,
    version         integer     NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      text        NOT NULL,
    PRIMARY KEY (source_system, kind, source_code),
    CHECK (valid_to IS NULL OR valid_from IS NULL OR valid_from <= valid_to)
);
CREATE INDEX cross_reference_canonical_idx ON cross_reference (kind, canonical_id);

-- Who changed what, when, from what to what.
CREATE TABLE audit (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    action      text        NOT NULL,
    kind        text        NOT NULL,
    record_id   text        NOT NULL,
    version     integer,
    request_id  text        NOT NULL,
    before      jsonb,
    after       jsonb
);
CREATE INDEX audit_record_idx ON audit (kind, record_id, id);

-- Transactional outbox: written in the same transaction as the change, so a crash between
-- commit and publish cannot lose it. A drainer publishes rows in id order (the change event
-- on MASTERDATA and the read model in the KV bucket), then deletes them.
CREATE TABLE outbox (
    id          bigserial   PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    subject     text        NOT NULL,
    msg_id      text        NOT NULL,
    headers     jsonb       NOT NULL,
    payload     bytea       NOT NULL,
    kv_key      text        NOT NULL
);

-- Events whose references did not resolve, parked in arrival order per entity until the
-- master data they wait for arrives (missing_keys), or a person releases or discards them.
-- An event of an entity that already has parked events is parked behind them (reasons empty).
CREATE TABLE parked_event (
    id            bigserial   PRIMARY KEY,
    event_id      text        NOT NULL UNIQUE,
    entity        text        NOT NULL,  -- '<stream>:<entity_key>'
    stream        text        NOT NULL,
    stream_seq    bigint      NOT NULL,
    subject       text        NOT NULL,
    headers       jsonb       NOT NULL,
    raw           bytea       NOT NULL,
    event_type    text        NOT NULL,
    site          text        NOT NULL,
    parked_at     timestamptz NOT NULL DEFAULT now(),
    reasons       text[]      NOT NULL,
    failures      jsonb       NOT NULL,
    missing_keys  text[]      NOT NULL,
    attempts      integer     NOT NULL DEFAULT 0,
    last_attempt_at timestamptz
);
CREATE INDEX parked_event_entity_idx ON parked_event (entity, stream_seq);
CREATE INDEX parked_event_missing_idx ON parked_event USING gin (missing_keys);
CREATE INDEX parked_event_parked_at_idx ON parked_event (parked_at);
