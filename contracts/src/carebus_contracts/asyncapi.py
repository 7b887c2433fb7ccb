"""The AsyncAPI 3.0 document for the whole suite, generated from the registry.

One channel per contract version (address = the subject template), one message per
channel, and one operation per (service, send|receive, channel) taken from
:data:`SERVICES`, so the document says which service sends and receives what.
Producers send only the current major; consumers receive every major they can upcast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from carebus_contracts import __version__
from carebus_contracts import subjects as catalogue
from carebus_contracts.exceptions import ReasonCategory, Stage
from carebus_contracts.registry import (
    HEADER_EVENT_TYPE,
    HEADER_MSG_ID,
    HEADER_SCHEMA_VERSION,
    ContractInfo,
    Registry,
)

Selector = Callable[[ContractInfo], bool]


def _domain(*domains: str) -> Selector:
    return lambda info: info.domain in domains


def _types(*event_types: str) -> Selector:
    return lambda info: info.event_type in event_types


@dataclass(frozen=True)
class ServiceRole:
    sends: Selector
    receives: Selector


_NOTHING: Final[Selector] = lambda info: False  # noqa: E731
_EXCEPTIONS: Final = _domain("exceptions")

SERVICES: Final[dict[str, ServiceRole]] = {
    "scheduling-adapter": ServiceRole(sends=_domain("scheduling"), receives=_NOTHING),
    "billing-adapter": ServiceRole(sends=_domain("billing"), receives=_NOTHING),
    "masterdata-validator": ServiceRole(
        sends=_domain("validated", "masterdata"), receives=_domain("scheduling", "billing")
    ),
    "mapper": ServiceRole(sends=_types("erp.journal.requested"), receives=_domain("validated")),
    "erp-poster": ServiceRole(
        sends=_types("erp.journal.posted", "erp.journal.confirmed", "erp.journal.rejected"),
        receives=_types("erp.journal.requested"),
    ),
    "outbound": ServiceRole(
        sends=_domain("status"),
        receives=_types(
            "validated.appointment.completed",
            "validated.payment.posted",
            "validated.adjustment.posted",
            "validated.claim.adjudicated",
            "erp.journal.confirmed",
            "erp.journal.rejected",
            "status.remittance.reported",
            "status.posting.reported",
        ),
    ),
}


def _channel_id(info: ContractInfo) -> str:
    return info.key.replace(".", "_")


def _headers(info: ContractInfo) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [HEADER_MSG_ID, HEADER_EVENT_TYPE, HEADER_SCHEMA_VERSION],
        "properties": {
            HEADER_MSG_ID: {"type": "string", "description": "The event id (JetStream dedup)."},
            HEADER_EVENT_TYPE: {"type": "string", "const": info.event_type},
            HEADER_SCHEMA_VERSION: {
                "type": "string",
                "pattern": f"^{info.major}\\.[0-9]+$",
                "description": "<major>.<minor> of the payload's contract.",
            },
        },
    }


def _parameters(info: ContractInfo) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if info.dynamic_subject:
        params["stage"] = {"enum": [s.value for s in Stage], "description": "Raising service."}
        params["reason"] = {"enum": [r.value for r in ReasonCategory], "description": "Reason."}
    params["site"] = {
        "description": "Site code, a subject token (e.g. SITE01).",
        "examples": ["SITE01"],
    }
    params["partition"] = {
        "enum": [catalogue.partition_token(p) for p in range(catalogue.PARTITIONS)],
        "description": "The partition of the event's partition key (its entity key, or a "
        "billing event's claim): a stable CRC-32 modulo the partition count. Subjects stored "
        "before partitions end at the site.",
    }
    return params


def build_document(registry: Registry) -> dict[str, Any]:
    contracts = registry.contracts()
    payloads, schemas = msgspec.json.schema_components(
        [info.type for info in contracts], ref_template="#/components/schemas/{name}"
    )
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for info, payload in zip(contracts, payloads, strict=True):
        cid = _channel_id(info)
        doc = (info.type.__doc__ or "").strip().split("\n")[0]
        messages[cid] = {
            "name": info.type.__name__,
            "title": f"{info.event_type} {info.version}",
            "summary": doc or f"{info.event_type} v{info.major}",
            "contentType": "application/json",
            "headers": _headers(info),
            "payload": payload,
        }
        channels[cid] = {
            "address": info.address,
            "title": f"{info.event_type} v{info.major} (stream {info.stream})",
            "parameters": _parameters(info),
            "messages": {cid: {"$ref": f"#/components/messages/{cid}"}},
        }
    operations: dict[str, Any] = {}
    for service, role in SERVICES.items():
        for info in contracts:
            current = registry.current(info.event_type).major == info.major
            actions = []
            if (role.sends(info) or _EXCEPTIONS(info)) and current:
                actions.append("send")
            if role.receives(info):
                actions.append("receive")
            for action in actions:
                cid = _channel_id(info)
                operations[f"{service.replace('-', '_')}__{action}__{cid}"] = {
                    "action": action,
                    "title": f"{service} {action}s {info.event_type} v{info.major}",
                    "channel": {"$ref": f"#/channels/{cid}"},
                    "messages": [{"$ref": f"#/channels/{cid}/messages/{cid}"}],
                    "tags": [{"name": service}],
                }
    return {
        "asyncapi": "3.0.0",
        "id": "urn:carebus:events",
        "info": {
            "title": "carebus events",
            "version": __version__,
            "description": (
                "Every message exchanged by the carebus services over NATS JetStream. "
                "Subjects follow <domain>.<entity>.<event>.v<major>.<site>; one stream per "
                "domain. Money is integer minor units plus an ISO 4217 currency, never a float. "
                "Generated by `carebus-contracts generate`; do not edit."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "nats": {
                "host": "localhost:4222",
                "protocol": "nats",
                "description": "NATS with JetStream (one per environment).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
