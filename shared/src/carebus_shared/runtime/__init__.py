"""What every service process is made of: lifecycle, health, metrics, the HTTP server."""
