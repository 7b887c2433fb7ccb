"""Versioned message contracts shared by every carebus service (depends on msgspec only)."""
