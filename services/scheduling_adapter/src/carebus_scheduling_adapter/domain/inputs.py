"""The inputs this adapter takes: the source each is counted and kept under, its media type."""

from __future__ import annotations

from typing import Final

SOURCE_HL7: Final = "hl7"
SOURCE_FHIR: Final = "fhir"
SOURCE_CSV: Final = "csv"

CONTENT_HL7: Final = "application/hl7-v2"
CONTENT_FHIR: Final = "application/fhir+json"
CONTENT_CSV: Final = "text/csv"
