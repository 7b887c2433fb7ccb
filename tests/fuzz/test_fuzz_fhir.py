"""FHIR R4 JSON: the scheduling adapter's Appointment and Bundle reading and the billing
adapter's ChargeItem, ClaimResponse, PaymentReconciliation and Bundle reading, on arbitrary
bytes and on mutated official examples (deep nesting, huge numbers, lone surrogates, wrong
types): events or a ``FhirProblem`` / ``FhirRejected``, never another exception, no hang."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from carebus_billing_adapter.adapters.fhir.bundle import read_billing_bundle
from carebus_billing_adapter.adapters.fhir.mapping import FhirContext, resource_events
from carebus_billing_adapter.adapters.fhir.outcome import FhirRejected
from carebus_contracts.checks import all_checked
from carebus_scheduling_adapter.adapters.fhir.appointment import FhirSource, appointment_to_event
from carebus_scheduling_adapter.adapters.fhir.bundle import read_appointments
from carebus_scheduling_adapter.adapters.fhir.resources import Appointment
from carebus_shared.fhir.decoding import decode
from carebus_shared.fhir.outcome import FhirProblem
from tests.fuzz.harness import (
    FUZZ,
    any_bytes,
    billing_bundles,
    fhir_samples,
    json_mutated,
    outcome,
    scheduling_bundles,
)

NOW = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)
SOURCE = FhirSource(source_system="ehr", site="SITE", received_at=NOW)
CONTEXT = FhirContext(
    site="SITE", source_system="ehr", timezone=dt.UTC, currency="USD", recorded_at=NOW
)
APPOINTMENTS = fhir_samples("Appointment")
BILLING = {
    kind: fhir_samples(kind) for kind in ("ChargeItem", "ClaimResponse", "PaymentReconciliation")
}
SCHEDULING_BUNDLES = scheduling_bundles()
BILLING_BUNDLES = billing_bundles()
FHIR_ERRORS = (FhirProblem, FhirRejected)


def _appointment(raw: bytes, method: str = "POST") -> object:
    """As the scheduling adapter's single-resource route does it."""
    appt = decode(raw, Appointment, "Appointment")
    return appointment_to_event(appt, raw=raw, method=method, fhir_id=None, source=SOURCE)


def _scheduling_bundle(raw: bytes) -> object:
    result = read_appointments(raw, SOURCE)
    return result.events


def _billing(kind: str, raw: bytes, url_id: str | None = None) -> object:
    return resource_events(kind, raw, url_id, CONTEXT)


def _billing_bundle(raw: bytes) -> object:
    return all_checked(read_billing_bundle(raw, CONTEXT).events)


@FUZZ
@given(any_bytes())
def test_every_fhir_entry_point_on_arbitrary_bytes(raw: bytes) -> None:
    outcome(lambda: _appointment(raw), FHIR_ERRORS)
    outcome(lambda: _scheduling_bundle(raw), FHIR_ERRORS)
    outcome(lambda: _billing_bundle(raw), FHIR_ERRORS)
    for kind in BILLING:
        outcome(lambda kind=kind: _billing(kind, raw), FHIR_ERRORS)


@FUZZ
@given(json_mutated(APPOINTMENTS), st.sampled_from(("POST", "PUT")))
def test_appointment_mutated_examples(raw: bytes, method: str) -> None:
    outcome(lambda: _appointment(raw, method), FHIR_ERRORS)


@FUZZ
@given(json_mutated(SCHEDULING_BUNDLES))
def test_scheduling_bundle_mutated_examples(raw: bytes) -> None:
    outcome(lambda: _scheduling_bundle(raw), FHIR_ERRORS)


@FUZZ
@given(json_mutated(BILLING["ChargeItem"]), st.sampled_from((None, "c1")))
def test_charge_item_mutated_examples(raw: bytes, url_id: str | None) -> None:
    outcome(lambda: _billing("ChargeItem", raw, url_id), FHIR_ERRORS)


@FUZZ
@given(json_mutated(BILLING["ClaimResponse"]))
def test_claim_response_mutated_examples(raw: bytes) -> None:
    outcome(lambda: _billing("ClaimResponse", raw), FHIR_ERRORS)


@FUZZ
@given(json_mutated(BILLING["PaymentReconciliation"]))
def test_payment_reconciliation_mutated_examples(raw: bytes) -> None:
    outcome(lambda: _billing("PaymentReconciliation", raw), FHIR_ERRORS)


@FUZZ
@given(json_mutated(BILLING_BUNDLES))
def test_billing_bundle_mutated_examples(raw: bytes) -> None:
    outcome(lambda: _billing_bundle(raw), FHIR_ERRORS)


_BIG = 1024 * 1024


def test_megabyte_bodies_are_answered_in_time() -> None:
    bodies = [
        b"[" * _BIG + b"]" * _BIG,
        b'{"resourceType":"Bundle","type":"batch","entry":' + b"[" * _BIG + b"]" * _BIG + b"}",
        b'{"resourceType":"ChargeItem","priceOverride":{"value":' + b"9" * _BIG + b"}}",
        b'{"resourceType":"Appointment","status":"booked","start":"' + b"2" * _BIG + b'"}',
        b'{"resourceType":"Bundle","type":"batch","entry":['
        + b",".join([b'{"resource":{"resourceType":"Patient","id":"p"}}'] * 20_000)
        + b"]}",
        b'"' + b"\\ud800" * (_BIG // 6) + b'"',
    ]
    for raw in bodies:
        outcome(lambda raw=raw: _appointment(raw), FHIR_ERRORS, seconds=5)
        outcome(lambda raw=raw: _scheduling_bundle(raw), FHIR_ERRORS, seconds=5)
        outcome(lambda raw=raw: _billing_bundle(raw), FHIR_ERRORS, seconds=5)
        for kind in BILLING:
            outcome(lambda raw=raw, kind=kind: _billing(kind, raw), FHIR_ERRORS, seconds=5)


# -- found by the properties above --------------------------------------------------------

_NOT_UTF8 = b'{"resourceType":"%s","status":"\xc2","id":"x"}'
_DEEP = b'{"resourceType":"%s","extension":' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def _bodies(kind: str) -> list[bytes]:
    entry = b'{"resource":%s,"request":{"method":"POST","url":"%s"}}'
    bundle = b'{"resourceType":"Bundle","type":"batch","entry":[%s]}'
    return [
        _NOT_UTF8 % kind.encode(),
        _DEEP % kind.encode(),
        bundle % (entry % (_NOT_UTF8 % kind.encode(), kind.encode())),
        bundle % (entry % (_DEEP % kind.encode(), kind.encode())),
    ]


def test_a_string_that_is_not_utf8_or_nesting_deeper_than_the_stack_is_a_400() -> None:
    # Was UnicodeDecodeError / RecursionError out of msgspec: a 500 and a mapping-bug log.
    for body in _bodies("Appointment"):
        problem = outcome(lambda body=body: _appointment(body), FHIR_ERRORS)
        if isinstance(problem, FhirProblem) and problem.reason == "invalid_json":
            assert problem.status == 400
            assert b"\xc2".decode("latin-1") not in problem.message
        problem = outcome(lambda body=body: _scheduling_bundle(body), FHIR_ERRORS)
        assert isinstance(problem, FhirProblem | list)
    for kind in BILLING:
        for body in _bodies(kind):
            rejected = outcome(lambda body=body, kind=kind: _billing(kind, body), FHIR_ERRORS)
            if isinstance(rejected, FhirRejected) and rejected.issues[0].reason == "not_json":
                assert rejected.status == 400
            outcome(lambda body=body: _billing_bundle(body), FHIR_ERRORS)


def test_a_minutes_duration_past_year_9999_is_a_problem() -> None:
    # Was OverflowError out of appointment_to_event.
    for minutes in (10**30, 2**63, 999_999_999_999):
        body = (
            b'{"resourceType":"Appointment","status":"booked","id":"a1",'
            b'"start":"2025-03-10T09:00:00+00:00","minutesDuration":%d,'
            b'"participant":[{"actor":{"reference":"Patient/1"}}]}' % minutes
        )
        problem = outcome(lambda body=body: _appointment(body), FHIR_ERRORS)
        assert isinstance(problem, FhirProblem)
        assert problem.expression == "Appointment.minutesDuration"


def test_absurd_charge_amounts_and_quantities_are_refused_in_time() -> None:
    # A quantity of 1E999999999 hung the request (int() of a billion-digit number); NaN,
    # sNaN and Infinity raised decimal.InvalidOperation; a huge amount decimal.Overflow.
    body = (
        b'{"resourceType":"ChargeItem","status":"billable","occurrenceDateTime":"2025-03-10",'
        b'"subject":{"reference":"Patient/1"},"code":{"coding":[{"code":"x"}]},'
        b'"priceOverride":{"value":%s,"currency":"USD"},"quantity":{"value":%s}}'
    )
    for value in (b"1E999999999", b'"sNaN"', b'"NaN"', b'"Infinity"', b"9" * 5000):
        for raw, where in (
            (body % (value, b"1"), "priceOverride"),
            (body % (b"1", value), "quantity"),
        ):
            rejected = outcome(lambda raw=raw: _billing("ChargeItem", raw), FHIR_ERRORS, seconds=2)
            assert isinstance(rejected, FhirRejected), (value, where)
            assert rejected.issues[0].expression == f"ChargeItem.{where}.value"
