"""FHIR R4 over HTTP, the parts both adapters share: why an input is refused (the
``OperationOutcome``), and transaction / batch Bundles (reading them, deciding what is
published and kept, the ``transaction-response`` / ``batch-response``)."""
