"""carebus scheduling adapter.

Takes appointment events from scheduling systems (HL7 v2 SIU over MLLP, FHIR R4 Appointment
over HTTP, CSV exports) and publishes canonical appointment events.
"""
