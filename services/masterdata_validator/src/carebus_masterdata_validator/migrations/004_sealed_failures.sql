-- Parked events' failures quote the offending values: sealed like their raw input
-- (docs/decisions/028). Rows written before hold their JSON as plaintext bytes (read as
-- they are; `carebus keys rewrap` seals them).
SET LOCAL search_path TO carebus_masterdata_validator;

ALTER TABLE parked_event ALTER COLUMN failures TYPE bytea USING convert_to(failures::text, 'UTF8');
