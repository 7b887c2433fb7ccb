"""Use cases of the billing adapter: plain async code over the runtime's intake."""
