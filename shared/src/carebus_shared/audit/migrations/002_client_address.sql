-- From where (issue 17): the client's network address (an HTTP request's peer, or
-- cli@<host>). Covered by the entry's hash when present; older entries have none and hash
-- as they did (docs/decisions/028).
ALTER TABLE carebus_audit.entry ADD COLUMN client_address text;
