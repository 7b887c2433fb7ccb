"""How the ERP poster is driven: the JetStream subscribers, the Litestar routes, the CLI."""
