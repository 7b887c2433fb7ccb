"""Request body → typed FHIR resource, or an OperationOutcome-ready rejection."""

from __future__ import annotations

from typing import Final

import msgspec

from carebus_billing_adapter.adapters.fhir.outcome import FhirRejected
from carebus_billing_adapter.adapters.fhir.resources import (
    ChargeItem,
    ClaimResponse,
    PaymentReconciliation,
)
from carebus_contracts.rule_text import rule_only
from carebus_shared.fhir.decoding import unreadable

Resource = ChargeItem | ClaimResponse | PaymentReconciliation

RESOURCE_TYPES: Final[dict[str, type[Resource]]] = {
    "ChargeItem": ChargeItem,
    "ClaimResponse": ClaimResponse,
    "PaymentReconciliation": PaymentReconciliation,
}


class _Kind(msgspec.Struct, rename="camel"):
    resource_type: str | None = None


def _fhirpath(resource_type: str, msgspec_path: str) -> str:
    """msgspec's ``$.priceOverride.value`` → FHIRPath ``ChargeItem.priceOverride.value``."""
    return resource_type + msgspec_path.removeprefix("$")


def decode_resource(kind: type[Resource], body: bytes) -> Resource:
    name = kind.__name__
    try:
        declared = msgspec.json.decode(body, type=_Kind).resource_type
    except msgspec.DecodeError as exc:
        raise FhirRejected.one(
            "structure", f"not a JSON object: {rule_only(str(exc))}", reason="not_json", status=400
        ) from None
    except (RecursionError, UnicodeDecodeError) as exc:
        raise FhirRejected.one(
            "structure", f"not a JSON object: {unreadable(exc)}", reason="not_json", status=400
        ) from None
    if declared != name:
        raise FhirRejected.one(
            "invalid",
            f"resourceType must be {name} on this endpoint",
            f"{name}.resourceType",
            reason="wrong_resource_type",
            value=declared,
            status=400,
        )
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        message = str(exc)
        path = message.rsplit(" - at `", 1)[1].rstrip("`") if " - at `" in message else "$"
        raise FhirRejected.one(
            "structure",
            rule_only(message.split(" - at `")[0]),
            _fhirpath(name, path),
            reason="invalid_structure",
        ) from None
    except (RecursionError, UnicodeDecodeError) as exc:
        raise FhirRejected.one(
            "structure", f"not a JSON object: {unreadable(exc)}", reason="not_json", status=400
        ) from None
