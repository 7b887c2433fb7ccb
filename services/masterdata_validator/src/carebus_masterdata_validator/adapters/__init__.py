"""I/O of the master-data validator: parsers, NATS publishers, PostgreSQL, HTTP clients."""
