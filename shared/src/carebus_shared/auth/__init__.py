"""HTTP clients, their keys and scopes, the app-wide guard and rate limits (docs/decisions/023)."""
