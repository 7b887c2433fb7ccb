"""Use cases of the master-data validator: plain async code over the adapters."""
