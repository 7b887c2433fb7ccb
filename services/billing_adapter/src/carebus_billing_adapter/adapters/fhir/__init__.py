"""FHIR R4 billing resources (ChargeItem, ClaimResponse, PaymentReconciliation) → events."""
