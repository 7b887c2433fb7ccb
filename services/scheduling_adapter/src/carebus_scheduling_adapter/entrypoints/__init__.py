"""How the scheduling adapter is driven: FastStream subscribers, Litestar routes, CLI."""
