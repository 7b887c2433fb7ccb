"""Deterministic identifiers for remittance parts.

Ids are UUIDv5 over the identifying X12 values and the part's position, so redelivering the same
file yields the same ids and the publisher can de-duplicate on them. The parts are JSON-encoded
before hashing so that no choice of values can make two different keys collide.
"""

from __future__ import annotations

import uuid

import msgspec

# Fixed forever: changing it would re-key every remittance ever published.
_NAMESPACE = uuid.UUID("6f1d2c1e-4b8a-5c3e-9a57-835835835835")


def _derive(*parts: str | int | None) -> str:
    return str(uuid.uuid5(_NAMESPACE, msgspec.json.encode(parts).decode()))


def payment_id(
    *,
    sender_id: str | None,
    interchange_control_number: str | None,
    group_control_number: str | None,
    transaction_control_number: str,
    trace_number: str,
) -> str:
    # GS06 is included because ST02 is only unique within its functional group.
    return _derive(
        "payment",
        sender_id,
        interchange_control_number,
        group_control_number,
        transaction_control_number,
        trace_number,
    )


def claim_payment_id(
    payment: str, position: int, patient_control_number: str, payer_claim: str | None
) -> str:
    return _derive("claim", payment, position, patient_control_number, payer_claim)


def service_line_id(claim_payment: str, position: int) -> str:
    return _derive("service_line", claim_payment, position)


def adjustment_id(parent: str, position: int, group: str, carc: str) -> str:
    return _derive("adjustment", parent, position, group, carc)


def provider_adjustment_id(payment: str, position: int, reason_code: str) -> str:
    return _derive("provider_adjustment", payment, position, reason_code)
