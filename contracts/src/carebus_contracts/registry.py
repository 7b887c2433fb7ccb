"""The contract registry and the codec every service uses on its hot path.

One :class:`ContractInfo` per (event type, major version).  Decoders are built once per
contract and cached (msgspec decodes bytes straight into the struct; never ``json.loads``
first).  :func:`decode` accepts any known major and upcasts it to the current one, so a
consumer only ever handles current types.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import msgspec

from carebus_contracts import subjects
from carebus_contracts.billing import BILLING_EVENTS
from carebus_contracts.envelope import Event, event_type_of, version_of
from carebus_contracts.erp import ERP_EVENTS
from carebus_contracts.exceptions import EXCEPTION_EVENTS
from carebus_contracts.masterdata import MASTERDATA_EVENTS
from carebus_contracts.rule_text import rule_only
from carebus_contracts.scheduling import SCHEDULING_EVENTS
from carebus_contracts.status import STATUS_EVENTS
from carebus_contracts.upcasting import upcast
from carebus_contracts.validated import VALIDATED_EVENTS

E = TypeVar("E", bound=Event)

HEADER_MSG_ID: Final = "Nats-Msg-Id"
HEADER_EVENT_TYPE: Final = "Carebus-Event-Type"
HEADER_SCHEMA_VERSION: Final = "Carebus-Schema-Version"

STREAM_FOR_DOMAIN: Final[dict[str, str]] = {
    subjects.DOMAIN_SCHEDULING: subjects.STREAM_SCHEDULING,
    subjects.DOMAIN_BILLING: subjects.STREAM_BILLING,
    subjects.DOMAIN_MASTERDATA: subjects.STREAM_MASTERDATA,
    subjects.DOMAIN_VALIDATED: subjects.STREAM_VALIDATED,
    subjects.DOMAIN_ERP: subjects.STREAM_ERP,
    subjects.DOMAIN_EXCEPTIONS: subjects.STREAM_EXCEPTIONS,
    subjects.DOMAIN_STATUS: subjects.STREAM_STATUS,
}

_PATH_RE: Final = re.compile(r" - at `(\$[^`]*)`$")
_VERSION_RE: Final = re.compile(r"^([0-9]+)(?:\.([0-9]+))?$")


class UnknownContractError(LookupError):
    """No contract is registered for this event type, major version or subject."""


class ContractDecodeError(ValueError):
    """A message did not match its contract. ``path`` is msgspec's JSON path, e.g.
    ``$.lines[2].amount``; ``reason`` is msgspec's message without the path."""

    def __init__(self, event_type: str, schema_version: str, reason: str, path: str) -> None:
        self.event_type = event_type
        self.schema_version = schema_version
        self.reason = reason
        self.path = path
        super().__init__(f"{event_type} {schema_version}: {reason} at {path}")


@dataclass(frozen=True)
class ContractInfo:
    """What the registry knows about one contract version."""

    type: type[Event]
    event_type: str
    major: int
    minor: int
    # Exceptions build their subject from fields (stage, reason) rather than the type.
    dynamic_subject: bool = field(default=False)

    @property
    def domain(self) -> str:
        return self.event_type.split(".")[0]

    @property
    def entity(self) -> str:
        return self.event_type.split(".")[1]

    @property
    def event(self) -> str:
        return self.event_type.split(".")[2]

    @property
    def version(self) -> str:
        return f"{self.major}.{self.minor}"

    @property
    def key(self) -> str:
        """Stable file-name stem, e.g. ``billing.claim.adjudicated.v2``."""
        return f"{self.event_type}.v{self.major}"

    @property
    def stream(self) -> str:
        return STREAM_FOR_DOMAIN[self.domain]

    @property
    def subject_filter(self) -> str:
        """Consumer filter for this contract over every site."""
        if self.dynamic_subject:
            return subjects.filter_for(self.domain, "*", "*", self.major)
        return subjects.filter_for(self.domain, self.entity, self.event, self.major)

    @property
    def address(self) -> str:
        """Subject template with parameters, as in the AsyncAPI document."""
        if self.dynamic_subject:
            return f"{self.domain}.{{stage}}.{{reason}}.v{self.major}.{{site}}.{{partition}}"
        return f"{self.domain}.{self.entity}.{self.event}.v{self.major}.{{site}}.{{partition}}"

    def subject(self, site: str | None, partition_key: str) -> str:
        """The concrete subject of an event of this contract at ``site`` whose partition
        key (usually its entity key) is ``partition_key``."""
        if self.dynamic_subject:
            raise TypeError(f"{self.event_type} subjects depend on the event: use subject_for()")
        partition = subjects.partition_of(partition_key)
        return subjects.subject(self.domain, self.entity, self.event, self.major, site, partition)


@functools.lru_cache(maxsize=256)  # every decoded message asks; there are few versions
def parse_version(schema_version: str) -> tuple[int, int]:
    """``"2.1"`` → (2, 1); a bare major (``"2"``) means minor 0."""
    match = _VERSION_RE.match(schema_version.strip())
    if match is None:
        raise UnknownContractError("malformed schema version (expected MAJOR or MAJOR.MINOR)")
    return int(match.group(1)), int(match.group(2) or 0)


# What an event type looks like: only such a value is named in an error text (a message's
# field may carry anything, patient data included; docs/decisions/028).
_EVENT_TYPE_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,40}(\.[a-z][a-z0-9_]{0,40}){2,3}")


def _named(event_type: str) -> str:
    return repr(event_type) if _EVENT_TYPE_RE.fullmatch(event_type) else "(not an event type)"


class Registry:
    def __init__(self, types: Iterable[type[Event]]) -> None:
        self._by_key: dict[tuple[str, int], ContractInfo] = {}
        self._by_type: dict[type[Event], ContractInfo] = {}
        self._current: dict[str, ContractInfo] = {}
        self._dynamic: dict[str, str] = {}  # domain -> event type, for exceptions
        self._decoders: dict[tuple[str, int], msgspec.json.Decoder[Any]] = {}
        for cls in types:
            major, minor = version_of(cls)
            info = ContractInfo(
                type=cls,
                event_type=event_type_of(cls),
                major=major,
                minor=minor,
                dynamic_subject=cls.subject_tokens is not Event.subject_tokens,
            )
            if (info.event_type, major) in self._by_key:
                raise ValueError(f"{info.event_type} v{major} is registered twice")
            if info.domain not in STREAM_FOR_DOMAIN:
                raise ValueError(f"{info.event_type}: unknown domain {info.domain!r}")
            self._by_key[(info.event_type, major)] = info
            self._by_type[cls] = info
            if info.dynamic_subject:
                self._dynamic[info.domain] = info.event_type
            current = self._current.get(info.event_type)
            if current is None or current.major < major:
                self._current[info.event_type] = info

    def contracts(self) -> tuple[ContractInfo, ...]:
        """Every contract version, sorted by event type then major."""
        return tuple(self._by_key[key] for key in sorted(self._by_key))

    def current_contracts(self) -> tuple[ContractInfo, ...]:
        return tuple(self._current[key] for key in sorted(self._current))

    def get(self, event_type: str, major: int) -> ContractInfo:
        try:
            return self._by_key[(event_type, major)]
        except KeyError:
            known = sorted(m for (t, m) in self._by_key if t == event_type)
            detail = f"known majors: {known}" if known else "unknown event type"
            raise UnknownContractError(f"{_named(event_type)} v{major}: {detail}") from None

    def current(self, event_type: str) -> ContractInfo:
        try:
            return self._current[event_type]
        except KeyError:
            raise UnknownContractError(f"unknown event type {_named(event_type)}") from None

    def info(self, event: Event | type[Event]) -> ContractInfo:
        cls = event if isinstance(event, type) else type(event)
        try:
            return self._by_type[cls]
        except KeyError:
            raise UnknownContractError(f"{cls.__name__} is not a registered contract") from None

    def for_subject(self, subject: str) -> ContractInfo:
        """The contract a concrete subject carries, e.g. ``billing.charge.posted.v1.S1.p3``
        (or one stored before partitions, ``billing.charge.posted.v1.S1``)."""
        tokens = subject.split(".")
        if (
            len(tokens) not in (5, 6)
            or not tokens[3].startswith("v")
            or not tokens[3][1:].isdigit()
            or (len(tokens) == 6 and subjects.partition_in(subject) is None)
        ):
            raise UnknownContractError(
                "the subject does not follow <d>.<e>.<ev>.v<N>.<site>.p<partition>"
            )
        domain, entity, event, version = tokens[:4]
        event_type = self._dynamic.get(domain, f"{domain}.{entity}.{event}")
        return self.get(event_type, int(version[1:]))

    def decoder_for(self, event_type: str, major: int) -> msgspec.json.Decoder[Any]:
        """The cached decoder for one contract version."""
        key = (event_type, major)
        decoder = self._decoders.get(key)
        if decoder is None:
            decoder = msgspec.json.Decoder(self.get(event_type, major).type)
            self._decoders[key] = decoder
        return decoder

    def decode(self, data: bytes, event_type: str, schema_version: str) -> Event:
        """Decode a message of any known major and upcast it to the current major."""
        major, _minor = parse_version(schema_version)
        current = self.current(event_type)
        if major > current.major:
            raise UnknownContractError(
                f"{event_type} {schema_version} is newer than this build (v{current.major}): "
                "upgrade carebus-contracts"
            )
        try:
            event: Event = self.decoder_for(event_type, major).decode(data)
        except msgspec.DecodeError as exc:
            message = str(exc)
            match = _PATH_RE.search(message)
            reason = rule_only(message[: match.start()] if match else message)
            path = match.group(1) if match else "$"
            raise ContractDecodeError(event_type, schema_version, reason, path) from exc
        return upcast(event, current.major) if major < current.major else event

    def decode_as(self, cls: type[E], data: bytes, schema_version: str | None = None) -> E:
        """Decode into ``cls`` (a current contract), upcasting an older ``schema_version``."""
        info = self.info(cls)
        event = self.decode(data, info.event_type, schema_version or info.version)
        if not isinstance(event, cls):
            raise UnknownContractError(f"{info.event_type} decodes to {type(event).__name__}")
        return event

    def decode_message(
        self, subject: str, data: bytes, headers: Mapping[str, str] | None = None
    ) -> Event:
        """Decode a NATS message using its headers, falling back to its subject."""
        headers = headers or {}
        event_type = headers.get(HEADER_EVENT_TYPE)
        version = headers.get(HEADER_SCHEMA_VERSION)
        if event_type is None or version is None:
            info = self.for_subject(subject)
            event_type = event_type or info.event_type
            version = version or str(info.major)
        return self.decode(data, event_type, version)


ALL_EVENTS: Final[tuple[type[Event], ...]] = (
    *SCHEDULING_EVENTS,
    *BILLING_EVENTS,
    *MASTERDATA_EVENTS,
    *VALIDATED_EVENTS,
    *ERP_EVENTS,
    *EXCEPTION_EVENTS,
    *STATUS_EVENTS,
)
REGISTRY: Final = Registry(ALL_EVENTS)
_ENCODER: Final = msgspec.json.Encoder()


def encode(event: Event) -> bytes:
    return _ENCODER.encode(event)


def decode(data: bytes, event_type: str, schema_version: str) -> Event:
    return REGISTRY.decode(data, event_type, schema_version)


def decode_as(cls: type[E], data: bytes, schema_version: str | None = None) -> E:
    return REGISTRY.decode_as(cls, data, schema_version)


def decode_message(subject: str, data: bytes, headers: Mapping[str, str] | None = None) -> Event:
    return REGISTRY.decode_message(subject, data, headers)


def decoder_for(event_type: str, major: int) -> msgspec.json.Decoder[Any]:
    return REGISTRY.decoder_for(event_type, major)


def contract_for(event: Event | type[Event]) -> ContractInfo:
    return REGISTRY.info(event)


def subject_for(event: Event) -> str:
    """The concrete subject to publish ``event`` on."""
    domain, entity, name = event.subject_tokens()
    partition = subjects.partition_of(event.partition_key)
    return subjects.subject(domain, entity, name, REGISTRY.info(event).major, event.site, partition)


def headers_for(event: Event) -> dict[str, str]:
    """NATS headers to publish ``event`` with (the id doubles as JetStream's dedup key)."""
    return {
        HEADER_MSG_ID: event.event_id,
        HEADER_EVENT_TYPE: REGISTRY.info(event).event_type,
        HEADER_SCHEMA_VERSION: event.schema_version,
    }


def is_newer(event: Event, last_applied_version: int | None) -> bool:
    """True when ``event`` should be applied over the entity's ``last_applied_version``."""
    return last_applied_version is None or event.entity_version > last_applied_version
