"""How the ERP poster is driven: FastStream subscribers, Litestar routes, CLI."""
