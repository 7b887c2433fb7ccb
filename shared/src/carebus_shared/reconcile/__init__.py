"""`carebus reconcile`: scheduling, billing and the ledger compared per site and day
(docs/decisions/014)."""
