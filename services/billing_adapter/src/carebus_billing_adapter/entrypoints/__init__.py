"""How the billing adapter is driven: FastStream subscribers, Litestar routes, CLI."""
