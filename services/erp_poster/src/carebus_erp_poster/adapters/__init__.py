"""I/O of the ERP poster: parsers, NATS publishers, PostgreSQL, HTTP clients."""
