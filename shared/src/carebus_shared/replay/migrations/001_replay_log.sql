-- Every `carebus replay` (not its dry runs): who replayed which window of which stream into
-- which stage, how far it got, and how it ended. Written as the replay goes, so a replay
-- that was killed shows the last sequence it republished (resume after it).
CREATE SCHEMA IF NOT EXISTS carebus_replay;

CREATE TABLE carebus_replay.replay (
    id             bigserial   PRIMARY KEY,
    actor          text        NOT NULL,
    stream         text        NOT NULL,
    stage          text        NOT NULL,
    consumer       text        NOT NULL,
    subject        text        NOT NULL,
    -- The window as asked (a start sequence or a start time; the ends are optional) ...
    from_seq       bigint,
    to_seq         bigint,
    since          timestamptz,
    until          timestamptz,
    -- ... and as measured when the replay started.
    end_seq        bigint      NOT NULL,
    expected       bigint      NOT NULL,
    read           bigint      NOT NULL DEFAULT 0,
    republished    bigint      NOT NULL DEFAULT 0,
    -- Copies made by earlier replays found in the window: not replayed again.
    skipped        bigint      NOT NULL DEFAULT 0,
    -- Republishes JetStream dropped as duplicates (a chunk sent again after a failure).
    duplicates     bigint      NOT NULL DEFAULT 0,
    last_seq       bigint,
    started_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    outcome        text        NOT NULL DEFAULT 'running'
                       CHECK (outcome IN ('running', 'completed', 'failed', 'interrupted')),
    error          text
);

CREATE INDEX replay_started_idx ON carebus_replay.replay (started_at DESC);
