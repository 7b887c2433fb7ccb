"""Versioned message contracts shared by every carebus service (depends on msgspec only).

Start here: :func:`encode`, :func:`decode` / :func:`decode_as` / :func:`decode_message`,
:func:`subject_for`, :func:`headers_for`; the event classes live in the domain modules
(``scheduling``, ``billing``, ``masterdata``, ``validated``, ``erp``, ``exceptions``).
"""

__version__ = "0.1.0"

from carebus_contracts.envelope import Event, Money
from carebus_contracts.registry import (
    REGISTRY,
    ContractDecodeError,
    ContractInfo,
    UnknownContractError,
    contract_for,
    decode,
    decode_as,
    decode_message,
    decoder_for,
    encode,
    headers_for,
    is_newer,
    subject_for,
)

__all__ = [
    "REGISTRY",
    "ContractDecodeError",
    "ContractInfo",
    "Event",
    "Money",
    "UnknownContractError",
    "__version__",
    "contract_for",
    "decode",
    "decode_as",
    "decode_message",
    "decoder_for",
    "encode",
    "headers_for",
    "is_newer",
    "subject_for",
]
