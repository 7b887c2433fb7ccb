-- Where in the input the problem is, and the value that caused it: what a person needs
-- to fix the record (e.g. path $.provider.npi, value 9941339109).
ALTER TABLE carebus_exceptions.exception_record
    ADD COLUMN path text,
    ADD COLUMN offending_value text;
