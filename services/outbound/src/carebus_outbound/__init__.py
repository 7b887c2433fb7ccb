"""carebus outbound: feeds from the suite back to billing and scheduling (docs/decisions/025)."""
