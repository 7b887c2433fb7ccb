"""FHIR JSON → msgspec structs, a refusal naming the element when it does not fit.

Unknown elements are ignored (FHIR resources are large and extensible); a known element of
the wrong JSON type is a :class:`FhirProblem` naming its FHIRPath.
"""

from __future__ import annotations

import re
from typing import Any, Final, TypeVar

import msgspec

from carebus_contracts.rule_text import rule_only
from carebus_shared.fhir.outcome import STRUCTURE, FhirProblem

T = TypeVar("T")

_PATH: Final = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {}


class ResourceHead(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What every resource has."""

    resource_type: str | None = None
    id: str | None = None


def decode(data: bytes, cls: type[T], where: str) -> T:
    """Decode ``data`` as ``cls``; a problem names the element at ``where`` + its path."""
    decoder = _DECODERS.get(cls)
    if decoder is None:
        decoder = _DECODERS[cls] = msgspec.json.Decoder(cls)
    try:
        result: T = decoder.decode(data)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _PATH.search(text)
        path = where + (match["path"] if match else "")
        reason = rule_only(text[: match.start()] if match else text)
        raise FhirProblem(
            "invalid_structure", reason, code=STRUCTURE, expression=path, status=400
        ) from exc
    except msgspec.DecodeError as exc:
        raise FhirProblem(
            "invalid_json", f"not valid JSON: {rule_only(str(exc))}", code=STRUCTURE, status=400
        ) from exc
    except (RecursionError, UnicodeDecodeError) as exc:
        raise FhirProblem(
            "invalid_json", f"not valid JSON: {unreadable(exc)}", code=STRUCTURE, status=400
        ) from None
    return result


def unreadable(exc: RecursionError | UnicodeDecodeError) -> str:
    """Why msgspec could not read a body, for the two errors it raises besides DecodeError
    (nesting deeper than the interpreter's recursion limit, a string that is not UTF-8);
    the rule only, never the bytes."""
    if isinstance(exc, RecursionError):
        return "nested too deep"
    return "a string is not valid UTF-8"


def resource_type_of(data: bytes, where: str) -> str | None:
    return decode(data, ResourceHead, where).resource_type
