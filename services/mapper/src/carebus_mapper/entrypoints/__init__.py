"""How the mapper is driven: FastStream subscribers, Litestar routes, CLI."""
