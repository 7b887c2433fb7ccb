"""JetStream topology, provisioning, connection and publishing helpers."""
