"""See the service README."""
