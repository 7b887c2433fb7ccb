"""carebus runtime library: settings, NATS/JetStream, PostgreSQL, HTTP health, logging, devstack."""
