"""Mapping rule sets shipped with the mapper (TOML data; ``default/`` is the one in use)."""
