-- `carebus reconcile` keeps its results here: one row per run, its figures per site and day,
-- and every difference it found (docs/decisions/014). Nothing else writes this schema.
CREATE SCHEMA IF NOT EXISTS carebus_reconcile;

CREATE TABLE carebus_reconcile.run (
    run_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    first_day   date        NOT NULL,
    last_day    date        NOT NULL,
    site        text,       -- NULL: every site
    unexplained integer     NOT NULL CHECK (unexplained >= 0),
    explained   integer     NOT NULL CHECK (explained >= 0)
);

CREATE INDEX run_started_idx ON carebus_reconcile.run (started_at);

CREATE TABLE carebus_reconcile.site_day (
    run_id      bigint  NOT NULL REFERENCES carebus_reconcile.run ON DELETE CASCADE,
    site        text    NOT NULL,
    day         date    NOT NULL,
    -- Counts and sums side by side (what `--format json` prints for the site and day).
    figures     jsonb   NOT NULL,
    unexplained integer NOT NULL CHECK (unexplained >= 0),
    explained   integer NOT NULL CHECK (explained >= 0),
    PRIMARY KEY (run_id, site, day)
);

CREATE INDEX site_day_latest_idx ON carebus_reconcile.site_day (site, day, run_id DESC);

CREATE TABLE carebus_reconcile.difference (
    run_id       bigint NOT NULL,
    site         text   NOT NULL,
    day          date   NOT NULL,
    kind         text   NOT NULL CHECK (kind IN (
                     'completed_without_charge', 'charged_without_posting',
                     'paid_without_posting', 'adjusted_without_posting',
                     'posted_without_confirmation', 'posted_twice')),
    entity       text   NOT NULL,
    entity_id    text   NOT NULL,
    journal_ids  text[] NOT NULL DEFAULT '{}',
    documents    text[] NOT NULL DEFAULT '{}',
    amount_minor bigint,
    currency     text,
    exception_id bigint,
    -- NULL: unexplained.
    explanation  text,
    FOREIGN KEY (run_id, site, day) REFERENCES carebus_reconcile.site_day ON DELETE CASCADE
);

CREATE INDEX difference_run_idx ON carebus_reconcile.difference (run_id, site, day);

-- The newest result for every site and day: what a dashboard or an operator reads.
CREATE VIEW carebus_reconcile.latest_site_day AS
SELECT DISTINCT ON (s.site, s.day)
       s.site, s.day, s.run_id, r.finished_at, s.unexplained, s.explained, s.figures
  FROM carebus_reconcile.site_day s
  JOIN carebus_reconcile.run r USING (run_id)
 ORDER BY s.site, s.day, s.run_id DESC;
