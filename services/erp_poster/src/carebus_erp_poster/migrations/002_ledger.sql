-- The embedded double-entry general ledger (connector "ledger").
-- Posted entries are never edited: a correction is a reversing entry.

CREATE TABLE carebus_erp_poster.journal_entry (
    entry_id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The journal id (plus attempt): posting the same journal twice is impossible.
    idempotency_key text        NOT NULL UNIQUE,
    journal_id      text        NOT NULL,
    company         text        NOT NULL,
    site            text        NOT NULL,
    posting_date    date        NOT NULL,
    description     text        NOT NULL,
    source_event_id text        NOT NULL,
    correlation_id  text        NOT NULL,
    posted_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE carebus_erp_poster.journal_line (
    entry_id     bigint  NOT NULL REFERENCES carebus_erp_poster.journal_entry (entry_id),
    line_number  integer NOT NULL CHECK (line_number >= 1),
    account      text    NOT NULL CHECK (account <> ''),
    side         text    NOT NULL CHECK (side IN ('debit', 'credit')),
    -- Money is integer minor units, never float.
    amount_minor bigint  NOT NULL CHECK (amount_minor > 0),
    currency     text    NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    cost_centre  text,
    department   text,
    location     text,
    payer_class  text,
    provider     text,
    memo         text,
    PRIMARY KEY (entry_id, line_number)
);

CREATE INDEX journal_entry_site_day_idx ON carebus_erp_poster.journal_entry (site, posting_date);

-- An entry must have two lines or more, and its debits must equal its credits in every
-- currency. Checked at commit (deferred), so lines may be written after their entry within
-- one transaction, whatever code writes them: raw SQL is refused as well.
CREATE FUNCTION carebus_erp_poster.assert_entry_balanced(p_entry bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    line_count bigint;
    bad_currency text;
    bad_delta numeric;
BEGIN
    SELECT coalesce(sum(lines), 0),
           (array_agg(currency) FILTER (WHERE delta <> 0))[1],
           (array_agg(delta) FILTER (WHERE delta <> 0))[1]
      INTO line_count, bad_currency, bad_delta
      FROM (SELECT currency,
                   count(*) AS lines,
                   sum(CASE side WHEN 'debit' THEN amount_minor ELSE -amount_minor END) AS delta
              FROM carebus_erp_poster.journal_line
             WHERE entry_id = p_entry
             GROUP BY currency) per_currency;
    IF line_count < 2 THEN
        RAISE EXCEPTION 'journal entry % has % line(s); an entry needs at least two',
            p_entry, line_count
            USING ERRCODE = 'check_violation', CONSTRAINT = 'journal_entry_balanced';
    END IF;
    IF bad_currency IS NOT NULL THEN
        RAISE EXCEPTION 'journal entry % is unbalanced: debits minus credits is % minor units of %',
            p_entry, bad_delta, bad_currency
            USING ERRCODE = 'check_violation', CONSTRAINT = 'journal_entry_balanced';
    END IF;
END;
$$;

CREATE FUNCTION carebus_erp_poster.check_entry_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM carebus_erp_poster.assert_entry_balanced(NEW.entry_id);
    RETURN NULL;
END;
$$;

-- Was this entry written by the current transaction? Then the entry's own trigger checks it
-- whole at commit, and its lines need no check of their own.
CREATE FUNCTION carebus_erp_poster.entry_written_now(p_entry bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM carebus_erp_poster.journal_entry
                    WHERE entry_id = p_entry AND xmin = pg_current_xact_id()::xid)
$$;

-- Fires for an entry without lines too (the line trigger alone would miss it).
CREATE CONSTRAINT TRIGGER journal_entry_balanced
    AFTER INSERT ON carebus_erp_poster.journal_entry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION carebus_erp_poster.check_entry_balanced();

-- Fires for a line added to an entry committed earlier.
-- (A constraint trigger's WHEN is evaluated at once: lines written with their entry are not
-- even queued, which keeps batched writes fast.)
CREATE CONSTRAINT TRIGGER journal_line_balanced
    AFTER INSERT ON carebus_erp_poster.journal_line
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NOT carebus_erp_poster.entry_written_now(NEW.entry_id))
    EXECUTE FUNCTION carebus_erp_poster.check_entry_balanced();

CREATE FUNCTION carebus_erp_poster.refuse_ledger_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only (% on %): post a reversing entry instead',
        TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER journal_entry_append_only
    BEFORE UPDATE OR DELETE ON carebus_erp_poster.journal_entry
    FOR EACH ROW EXECUTE FUNCTION carebus_erp_poster.refuse_ledger_change();

CREATE TRIGGER journal_line_append_only
    BEFORE UPDATE OR DELETE ON carebus_erp_poster.journal_line
    FOR EACH ROW EXECUTE FUNCTION carebus_erp_poster.refuse_ledger_change();

-- Read views for finance. Amounts are minor units of `currency`.
CREATE VIEW carebus_erp_poster.trial_balance_by_account AS
SELECT e.company,
       l.account,
       l.currency,
       coalesce(sum(l.amount_minor) FILTER (WHERE l.side = 'debit'), 0)  AS debit_minor,
       coalesce(sum(l.amount_minor) FILTER (WHERE l.side = 'credit'), 0) AS credit_minor,
       sum(CASE l.side WHEN 'debit' THEN l.amount_minor ELSE -l.amount_minor END)
                                                                         AS balance_minor,
       count(DISTINCT e.entry_id)                                        AS entries
  FROM carebus_erp_poster.journal_line l
  JOIN carebus_erp_poster.journal_entry e USING (entry_id)
 GROUP BY e.company, l.account, l.currency;

CREATE VIEW carebus_erp_poster.trial_balance_by_cost_centre AS
SELECT e.company,
       coalesce(l.cost_centre, '(none)')                                 AS cost_centre,
       l.account,
       l.currency,
       coalesce(sum(l.amount_minor) FILTER (WHERE l.side = 'debit'), 0)  AS debit_minor,
       coalesce(sum(l.amount_minor) FILTER (WHERE l.side = 'credit'), 0) AS credit_minor,
       sum(CASE l.side WHEN 'debit' THEN l.amount_minor ELSE -l.amount_minor END)
                                                                         AS balance_minor
  FROM carebus_erp_poster.journal_line l
  JOIN carebus_erp_poster.journal_entry e USING (entry_id)
 GROUP BY e.company, coalesce(l.cost_centre, '(none)'), l.account, l.currency;

CREATE VIEW carebus_erp_poster.activity_by_site_day AS
SELECT e.site,
       e.posting_date,
       l.account,
       l.currency,
       coalesce(sum(l.amount_minor) FILTER (WHERE l.side = 'debit'), 0)  AS debit_minor,
       coalesce(sum(l.amount_minor) FILTER (WHERE l.side = 'credit'), 0) AS credit_minor,
       sum(CASE l.side WHEN 'debit' THEN l.amount_minor ELSE -l.amount_minor END)
                                                                         AS net_minor,
       count(DISTINCT e.entry_id)                                        AS entries
  FROM carebus_erp_poster.journal_line l
  JOIN carebus_erp_poster.journal_entry e USING (entry_id)
 GROUP BY e.site, e.posting_date, l.account, l.currency;
