-- Version fencing: the newest applied version of each fenced entity (appointments, claims),
-- the source event that carried it, and the state it left the entity in (its status),
-- which rules read as `previous_status`.
CREATE TABLE carebus_mapper.entity_version (
    site            text        NOT NULL,
    entity          text        NOT NULL,
    entity_key      text        NOT NULL,
    entity_version  bigint      NOT NULL,
    source_event_id text        NOT NULL,
    state           text,
    applied_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, entity, entity_key)
);
