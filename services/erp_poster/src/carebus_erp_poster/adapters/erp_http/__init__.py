"""HTTP plumbing every REST ERP connector reuses: rate limit, retries, circuit breaker."""
