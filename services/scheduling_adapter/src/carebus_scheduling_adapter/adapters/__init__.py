"""I/O of the scheduling adapter: parsers, NATS publishers, PostgreSQL, HTTP clients."""
