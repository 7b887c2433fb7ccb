"""Embedded NATS and PostgreSQL servers for `make run` and the tests (loopback, free ports)."""
