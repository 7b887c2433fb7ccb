"""ANSI X12 835 (5010, tolerating 4010) remittance parsing for the billing adapter."""

from carebus_billing_adapter.adapters.x12.remittance_parser import normalized_digest, parse_835
from carebus_billing_adapter.domain.remittance_rejection import (
    Issue,
    Rejection,
    RejectionReason,
    RemittanceRejected,
)

__all__ = [
    "Issue",
    "Rejection",
    "RejectionReason",
    "RemittanceRejected",
    "normalized_digest",
    "parse_835",
]
