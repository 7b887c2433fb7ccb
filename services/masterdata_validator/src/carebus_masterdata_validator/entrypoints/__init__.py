"""How the master-data validator is driven: FastStream subscribers, Litestar routes, CLI."""
