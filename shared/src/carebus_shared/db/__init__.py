"""PostgreSQL: connection pools and per-service schema migrations."""
