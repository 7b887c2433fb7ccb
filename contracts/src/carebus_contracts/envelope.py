"""The event envelope and the small value types every contract shares.

Every event is one flat JSON object: the envelope fields first, then the payload fields of
its type.  The event type is a msgspec *tag* (``event_type``), so msgspec fills it in on
construction and rejects a message of another type on decode.  ``schema_version`` is a
per-class default ("<major>.<minor>"), so the class itself is the one place that says
which version it is; a decoded message keeps the version its producer wrote.

Money is never a float: amounts are integer minor units (cents for USD) plus an ISO 4217
currency code, see :class:`Money`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

import msgspec

# Timestamps must carry a zone: msgspec rejects naive datetimes on decode, and
# ``Event.__post_init__`` rejects them on construction.
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1)]
# ISO 4217 alphabetic code, e.g. "USD".
Currency = Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]
SchemaVersion = Annotated[str, msgspec.Meta(pattern=r"^[0-9]+\.[0-9]+$")]
# A token that is safe inside a NATS subject (no dots, spaces or wildcards).
SubjectToken = Annotated[str, msgspec.Meta(pattern="^[A-Za-z0-9_-]+$")]

ENVELOPE_FIELDS: Final = (
    "event_id",
    "occurred_at",
    "recorded_at",
    "source_system",
    "site",
    "correlation_id",
    "causation_id",
    "entity_key",
    "entity_version",
)


class Contract(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every payload part: immutable, keyword-only, unknown fields ignored.

    Subclasses must repeat ``kw_only=True`` (msgspec does not inherit it); a test checks.
    """


class Money(Contract, frozen=True, kw_only=True):
    """An amount in integer minor units of ``currency`` (12345 USD = $123.45). Never a float."""

    amount_minor: int
    currency: Currency


class Event(Contract, tag_field="event_type", frozen=True, kw_only=True):
    """The envelope. Concrete events subclass it with ``tag="<domain>.<entity>.<event>"``.

    ``entity_key`` names the business entity (e.g. an appointment id) and
    ``entity_version`` only grows for that entity, so a consumer can drop an update whose
    version is not newer than the one it already applied (out-of-order delivery).
    """

    schema_version: SchemaVersion
    event_id: NonEmptyStr
    """Unique per event; also sent as ``Nats-Msg-Id`` so JetStream de-duplicates re-sends."""
    occurred_at: AwareDatetime
    """When it happened in the source system."""
    recorded_at: AwareDatetime
    """When carebus recorded it (published it)."""
    source_system: NonEmptyStr
    site: NonEmptyStr
    correlation_id: NonEmptyStr
    """Shared by every event caused, directly or not, by one source message."""
    causation_id: str | None = None
    """The ``event_id`` of the event that caused this one; None for source events."""
    entity_key: NonEmptyStr
    entity_version: Annotated[int, msgspec.Meta(ge=0)]

    def __post_init__(self) -> None:
        if self.occurred_at.tzinfo is None or self.recorded_at.tzinfo is None:
            raise ValueError("occurred_at and recorded_at must be timezone-aware")

    @property
    def event_type(self) -> str:
        """The tag msgspec writes as the ``event_type`` field, e.g. "billing.charge.posted"."""
        return event_type_of(type(self))

    @property
    def partition_key(self) -> str:
        """What picks the event's subject partition (docs/decisions/030): its entity key,
        unless its type groups it with other entities a stage must see in order."""
        return self.entity_key

    def subject_tokens(self) -> tuple[str, str, str]:
        """(domain, entity, event) of this event's subject; exceptions override it."""
        domain, entity, event = self.event_type.split(".")
        return domain, entity, event


def event_type_of(cls: type[Event]) -> str:
    tag = cls.__struct_config__.tag
    if not isinstance(tag, str):
        raise TypeError(f"{cls.__name__} has no event type tag")
    return tag


def version_of(cls: type[Event]) -> tuple[int, int]:
    """(major, minor) of a contract class, read from its ``schema_version`` default."""
    for field in msgspec.structs.fields(cls):
        if field.name == "schema_version" and isinstance(field.default, str):
            major, minor = field.default.split(".")
            return int(major), int(minor)
    raise TypeError(f"{cls.__name__} does not declare a schema_version default")


def envelope_of(event: Event) -> dict[str, Any]:
    """The envelope fields of ``event`` as keyword arguments, for upcasters and enrichers."""
    return {name: getattr(event, name) for name in ENVELOPE_FIELDS}
