"""carebus billing adapter.

Takes charges, remittances, payments and adjustments (HL7 v2 DFT, X12 835, FHIR) and
publishes canonical billing events.
"""
