CREATE SCHEMA IF NOT EXISTS carebus_auth;

-- An HTTP client: a system (scheduling, payer gateway, billing), a person (operator, admin)
-- or a service calling another (the ops console). Only the SHA-256 of its key is kept.
CREATE TABLE carebus_auth.client (
    name        text        PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$'),
    key_hash    bytea       NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    scopes      text[]      NOT NULL DEFAULT '{}',
    -- Token bucket per replica; NULL: the service's default.
    rate_per_s  real        CHECK (rate_per_s > 0),
    burst       integer     CHECK (burst >= 1),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
