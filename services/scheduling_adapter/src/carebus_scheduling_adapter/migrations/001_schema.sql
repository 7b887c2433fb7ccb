-- The scheduling adapter owns this schema; no other service reads or writes it.
CREATE SCHEMA IF NOT EXISTS carebus_scheduling_adapter;
