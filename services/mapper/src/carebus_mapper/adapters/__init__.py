"""I/O of the mapper: parsers, NATS publishers, PostgreSQL, HTTP clients."""
