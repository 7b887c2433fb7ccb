-- The ERP poster owns this schema; no other service reads or writes it.
CREATE SCHEMA IF NOT EXISTS carebus_erp_poster;
