"""FHIR R4 Appointment and Bundle requests: decoding and mapping to contract events."""
