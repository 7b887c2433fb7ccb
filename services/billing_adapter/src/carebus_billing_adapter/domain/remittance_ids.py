"""Deterministic identifiers for remittance parts.

Ids are UUIDv5 over the identifying X12 values and the part's position, so redelivering the same
file yields the same ids and the publisher can de-duplicate on them. The parts are JSON-encoded
before hashing so that no choice of values can make two different keys collide.
"""

from __future__ import annotations

import hashlib
import uuid

import msgspec

# Fixed forever: changing it would re-key every remittance ever published.
_NAMESPACE = uuid.UUID("6f1d2c1e-4b8a-5c3e-9a57-835835835835")


_NAMESPACE_BYTES = _NAMESPACE.bytes


def _derive(*parts: str | int | None) -> str:
    """``str(uuid.uuid5(_NAMESPACE, json(parts)))``, computed without building UUID objects
    (a large 835 derives a great many ids; docs/decisions/012)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + msgspec.json.encode(parts)).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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


def event_id(event_type: str, part_id: str) -> str:
    """The id of the canonical event ``event_type`` derived from one remittance part."""
    return _derive("event", event_type, part_id)
