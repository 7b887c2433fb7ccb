"""FHIR transaction and batch Bundles, the same in both adapters: read, settled, answered.

An adapter reads the Bundle (:func:`read_bundle`), turns each entry it takes into events
(a resource carebus does not take is *context*: read at most, never stored) and hands the
result to :func:`answer_bundle`, which applies the one rule of both adapters:

* a **transaction** is all or nothing: one bad entry refuses the whole Bundle;
* a **batch** publishes its good entries and answers each bad one with its own status and
  ``OperationOutcome``; a batch none of whose entries is acceptable is refused as a whole;
* whatever is refused is kept (the raw Bundle and its problems) before the answer, and the
  answer is given only after JetStream confirmed the events.

The answer to an accepted Bundle is a ``transaction-response`` / ``batch-response`` with one
``response`` per entry, in order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from carebus_contracts import Event
from carebus_shared.fhir.decoding import decode
from carebus_shared.fhir.outcome import (
    NOT_SUPPORTED,
    REQUIRED,
    VALUE,
    FhirProblem,
    information,
    internal_error,
    operation_outcome,
    status_of,
)

BUNDLE_TYPES: Final = ("transaction", "batch")
METHODS: Final = ("POST", "PUT")

_REASON_PHRASE: Final = {
    200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found",
    415: "Unsupported Media Type", 422: "Unprocessable Entity", 500: "Internal Server Error",
}  # fmt: skip


class _Element(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    pass


class BundleRequest(_Element, frozen=True, kw_only=True):
    method: str
    url: str | None = None


class BundleEntry(_Element, frozen=True, kw_only=True):
    full_url: str | None = None
    # Kept undecoded until its resourceType is known; empty when the entry has none.
    resource: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    request: BundleRequest | None = None


class Bundle(_Element, frozen=True, kw_only=True):
    resource_type: str
    id: str | None = None
    type: str | None = None
    entry: list[BundleEntry] = []


def read_bundle(raw: bytes) -> Bundle:
    """The Bundle, or a :class:`FhirProblem` when it is not a transaction or batch Bundle."""
    bundle = decode(raw, Bundle, "Bundle")
    if bundle.resource_type != "Bundle":
        raise FhirProblem(
            "wrong_resource_type", "resourceType must be Bundle",
            code=VALUE, expression="resourceType", value=bundle.resource_type, status=400,
        )  # fmt: skip
    if bundle.type not in BUNDLE_TYPES:
        raise FhirProblem(
            "unsupported_bundle_type",
            "Bundle.type must be transaction or batch",
            code=NOT_SUPPORTED, expression="Bundle.type", value=bundle.type,
        )  # fmt: skip
    return bundle


@dataclass(frozen=True)
class EntryRequest:
    method: str
    url_id: str | None
    """The id a ``PUT Type/id`` names; None for a POST."""


def entry_request(index: int, entry: BundleEntry, resource_type: str) -> EntryRequest:
    """The entry's interaction: POST (create) or PUT (update); anything else is refused."""
    where = f"Bundle.entry[{index}]"
    if entry.request is None:
        raise FhirProblem(
            "missing_request", "a transaction or batch entry needs a request",
            code=REQUIRED, expression=f"{where}.request",
        )  # fmt: skip
    method = entry.request.method.upper()
    if method not in METHODS:
        raise FhirProblem(
            "unsupported_method",
            "Bundle.entry.request.method must be POST or PUT",
            code=NOT_SUPPORTED, expression=f"{where}.request.method", value=method,
        )  # fmt: skip
    url_id = None
    if method == "PUT" and entry.request.url:
        url_id = entry.request.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or None
    return EntryRequest(method, url_id)


@dataclass(frozen=True)
class EntryResult:
    """What one entry came to: events and where they are (``location``), a problem, or
    neither (context: not stored)."""

    index: int
    resource_type: str | None
    events: tuple[Event, ...] = ()
    location: str | None = None
    etag: str | None = None
    problem: FhirProblem | None = None


@dataclass(frozen=True)
class BundleResult:
    type: str
    entries: tuple[EntryResult, ...]

    @property
    def problems(self) -> list[FhirProblem]:
        return [e.problem for e in self.entries if e.problem is not None]

    @property
    def events(self) -> list[Event]:
        return [event for e in self.entries for event in e.events]

    @property
    def refused(self) -> bool:
        """A transaction with a bad entry, or a batch with no acceptable entry."""
        if not self.problems:
            return False
        accepted = any(e.location is not None and e.problem is None for e in self.entries)
        return self.type == "transaction" or not accepted


@dataclass(frozen=True)
class BundleAnswer:
    status: int
    body: dict[str, Any]
    event_ids: tuple[str, ...] = ()
    problems: tuple[FhirProblem, ...] = ()


Publish = Callable[[Sequence[Event]], Awaitable[object]]
Keep = Callable[[Sequence[FhirProblem]], Awaitable[None]]


async def answer_bundle(
    read: Callable[[], BundleResult], *, publish: Publish, keep: Keep
) -> BundleAnswer:
    """Read the Bundle, publish what it carries or keep what is refused, and answer.

    ``read`` raises :class:`FhirProblem` for a Bundle refused as a whole; any other error is
    a mapping bug: the Bundle is kept and answered 500.  ``publish`` raising (JetStream or
    PostgreSQL down) propagates: nothing is acknowledged and the sender retries.
    """
    try:
        result = read()
    except FhirProblem as problem:
        return await _refuse([problem], keep)
    except Exception as exc:
        return await _refuse([internal_error(exc)], keep)
    problems = result.problems
    if result.refused:
        return await _refuse(problems, keep)
    events = result.events
    await publish(events)
    if problems:  # a batch whose other entries went through
        await keep(problems)
    return BundleAnswer(
        200, bundle_response(result), tuple(e.event_id for e in events), tuple(problems)
    )


async def _refuse(problems: Sequence[FhirProblem], keep: Keep) -> BundleAnswer:
    await keep(problems)
    return BundleAnswer(status_of(problems), operation_outcome(problems), (), tuple(problems))


def status_line(status: int) -> str:
    return f"{status} {_REASON_PHRASE.get(status, '')}".strip()


def bundle_response(result: BundleResult) -> dict[str, Any]:
    """The ``<type>-response`` Bundle: one response per entry, in order."""
    entries: list[dict[str, Any]] = []
    for entry in result.entries:
        response: dict[str, Any]
        if entry.problem is not None:
            response = {
                "status": status_line(entry.problem.status),
                "outcome": operation_outcome([entry.problem]),
            }
        elif entry.location is not None:
            response = {"status": status_line(200), "location": entry.location}
            if entry.etag is not None:
                response["etag"] = entry.etag
        else:
            response = {
                "status": status_line(200),
                # Its resourceType is the sender's text: named by the field, not quoted.
                "outcome": information("entry read as context only (by its resourceType)"),
            }
        entries.append({"response": response})
    return {"resourceType": "Bundle", "type": f"{result.type}-response", "entry": entries}
