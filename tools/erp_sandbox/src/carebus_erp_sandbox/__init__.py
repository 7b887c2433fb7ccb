"""The ERP sandbox: a small Litestar service that behaves like a cloud ERP's journal API.

For the demo and the tests of the ERP poster's "http" connector: configurable rate limit
(advertised in headers), latency, error rate, scheduled outages, idempotency keys, delayed
confirmation, validation errors. Backed by PostgreSQL (schema carebus_erp_sandbox). Run it
with ``carebus-erp-sandbox`` (port 8086). A tool, not a pipeline stage: it speaks the API in
``carebus_contracts.erp_journal_api`` and never imports the poster.
"""
