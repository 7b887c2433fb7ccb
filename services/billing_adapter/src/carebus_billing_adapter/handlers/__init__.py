"""Use cases of the billing adapter: plain async functions over the runtime's intake."""
