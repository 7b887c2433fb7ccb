"""The validator's pure rules: NPI check digit, the view, resolution for a date, enrichment."""

from __future__ import annotations

import datetime as dt

import pytest

from carebus_contracts import encode
from carebus_contracts.billing import PaymentPosted
from carebus_contracts.envelope import Money
from carebus_contracts.masterdata import (
    ChangeKind,
    CodeSystem,
    CostCentre,
    CrossReference,
    Department,
    EntityKind,
    Location,
    Payer,
    PayerClass,
    Provider,
    Service,
)
from carebus_masterdata_validator.domain import rules
from carebus_masterdata_validator.domain.kinds import BY_MODEL, BY_NAME, Record, kv_key
from carebus_masterdata_validator.domain.npi import npi_check_digit_ok
from carebus_masterdata_validator.domain.validation import validate
from carebus_masterdata_validator.domain.view import MasterDataView, decode_change
from tests.support.masterdata import VALID_NPIS, appointment, appointment_request, charge

AT = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize("npi", [*VALID_NPIS, "1689872012"])
def test_valid_npis_pass_the_check_digit(npi: str) -> None:
    assert npi_check_digit_ok(npi)


@pytest.mark.parametrize(
    "npi", ["9941339109", "1234567890", "123456789", "12345678931", "abcdefghij"]
)
def test_invalid_npis_fail_the_check_digit(npi: str) -> None:
    assert not npi_check_digit_ok(npi)


def _load(view: MasterDataView, *records: Record, version: int = 1) -> set[str]:
    touched: set[str] = set()
    for record in records:
        spec = BY_MODEL[type(record)]
        event = spec.change_event(record, ChangeKind.UPSERTED, version, at=AT, correlation_id="c")
        # Through the wire format, as the KV bucket delivers it.
        touched |= view.apply(spec.kv_key(spec.record_id(record)), decode_change(encode(event)))
    return touched


def _view() -> MasterDataView:
    view = MasterDataView()
    _load(
        view,
        CostCentre(cost_centre_id="CC-1", name="Cardiology"),
        CostCentre(cost_centre_id="CC-2", name="North", valid_to=dt.date(2025, 2, 28)),
        Location(
            location_id="L-1",
            name="North",
            place_of_service="11",
            time_zone="America/Chicago",
            cost_centre_id="CC-2",
        ),
        Department(department_id="D-1", name="Cardio", cost_centre_id="CC-1"),
        Provider(
            provider_id="P-1",
            npi=VALID_NPIS[0],
            name="Smith",
            department_id="D-1",
            valid_to=dt.date(2025, 3, 31),
        ),
        Service(service_code="99213", code_system=CodeSystem.CPT, description="Visit"),
        Payer(payer_id="PY-1", name="State", payer_class=PayerClass.MEDICAID),
        CrossReference(
            source_system="epic",
            kind=EntityKind.PROVIDER,
            source_code="1234^SMITH^JOHN",
            canonical_id="P-1",
        ),
    )
    return view


def test_a_cross_referenced_provider_enriches_with_its_department_and_cost_centre() -> None:
    event = appointment(
        site="S1",
        source="epic",
        appointment_id="A1",
        provider_code="1234^SMITH^JOHN",
        service_code="99213",
    )
    result = validate(_view(), event)
    assert result.ok, result.failures
    assert result.enrichment is not None
    assert (result.enrichment.provider_id, result.enrichment.provider_npi) == ("P-1", VALID_NPIS[0])
    assert (result.enrichment.department_id, result.enrichment.cost_centre) == ("D-1", "CC-1")
    assert result.enrichment.service_code == "99213"


def test_a_charge_naming_no_location_is_booked_at_its_departments() -> None:
    """A FHIR ChargeItem has no location (R4 has none): its performer's home department says
    where the service was given, as the department's own location (while in effect)."""
    view = _view()
    _load(
        view,
        Location(
            location_id="L-2",
            name="South",
            place_of_service="22",
            time_zone="America/New_York",
            cost_centre_id="CC-1",
            valid_to=dt.date(2025, 3, 31),
        ),
        Department(department_id="D-2", name="Cardio South", cost_centre_id="CC-1",
                   location_id="L-2"),
        Provider(provider_id="P-2", npi=VALID_NPIS[1], name="Jones", department_id="D-2"),
    )  # fmt: skip
    performed = charge(
        site="S", source="fhir", charge_id="C1", service_code="99213", provider_code=VALID_NPIS[1]
    )
    result = validate(view, performed)
    assert result.ok, result.failures
    assert result.enrichment is not None
    assert (result.enrichment.department_id, result.enrichment.location_id) == ("D-2", "L-2")
    assert (result.enrichment.place_of_service, result.enrichment.time_zone) == (
        "22", "America/New_York",
    )  # fmt: skip
    assert result.enrichment.cost_centre == "CC-1"  # the department's, as before
    # A location the charge names wins; a department's location out of effect is not used.
    named = charge(site="S", source="fhir", charge_id="C2", service_code="99213",
                   provider_code=VALID_NPIS[1], location_code="L-1")  # fmt: skip
    assert validate(view, named).enrichment.location_id == "L-1"  # type: ignore[union-attr]
    later = charge(site="S", source="fhir", charge_id="C3", service_code="99213",
                   provider_code=VALID_NPIS[1], on=dt.date(2025, 4, 1))  # fmt: skip
    assert validate(view, later).enrichment.location_id is None  # type: ignore[union-attr]
    # A department without a location (D-1) leaves it unset, as before.
    plain = charge(site="S", source="fhir", charge_id="C4", service_code="99213",
                   provider_code=VALID_NPIS[0])  # fmt: skip
    assert validate(view, plain).enrichment.location_id is None  # type: ignore[union-attr]


def test_a_provider_is_found_by_npi_and_dated_by_the_appointment() -> None:
    view = _view()
    before = appointment(
        site="S1",
        source="x",
        appointment_id="A1",
        on=dt.date(2025, 3, 31),
        provider_code=VALID_NPIS[0],
    )
    after = appointment(
        site="S1",
        source="x",
        appointment_id="A2",
        on=dt.date(2025, 4, 1),
        provider_code=VALID_NPIS[0],
    )
    assert validate(view, before).ok
    (failure,) = validate(view, after).failures
    assert (failure.reason, failure.offending_value) == ("inactive_provider", VALID_NPIS[0])
    assert "provider:P-1" in failure.wait_keys


def test_a_request_is_validated_like_an_appointment_on_its_requested_day() -> None:
    """A request has no slot: its references must be in effect on the first day asked for,
    else (none asked for, or a cancelled request) on the day it happened."""
    view = _view()  # provider P-1 is in effect until 2025-03-31
    asked = appointment_request(
        site="S1", source="epic", appointment_id="R1", requested_from=dt.date(2025, 3, 20),
        provider_code="1234^SMITH^JOHN",
    )  # fmt: skip
    result = validate(view, asked)
    assert result.ok, result.failures
    assert result.enrichment is not None
    assert (result.enrichment.provider_id, result.enrichment.cost_centre) == ("P-1", "CC-1")
    too_late = appointment_request(
        site="S1", source="epic", appointment_id="R2", requested_from=dt.date(2025, 4, 2),
        provider_code="1234^SMITH^JOHN",
    )  # fmt: skip
    (failure,) = validate(view, too_late).failures
    assert (failure.reason, failure.path) == ("inactive_provider", "$.request.provider_code")
    withdrawn = appointment_request(
        site="S1", source="epic", appointment_id="R3", occurred_on=dt.date(2025, 4, 1),
        cancelled=True, location_code="L-9",
    )  # fmt: skip
    (failure,) = validate(view, withdrawn).failures
    assert (failure.reason, failure.path) == ("unknown_location", "$.request.location_code")
    assert "xref:epic:location:L-9" in failure.wait_keys


def test_unknown_and_invalid_codes_name_what_would_fix_them() -> None:
    view = _view()
    event = appointment(
        site="S1", source="epic", appointment_id="A1", provider_code="DR-NEW", location_code="L-9"
    )
    reasons = {f.reason: f for f in validate(view, event).failures}
    assert set(reasons) == {"unknown_provider", "unknown_location"}
    assert "xref:epic:provider:DR-NEW" in reasons["unknown_provider"].wait_keys
    assert "provider:DR-NEW" in reasons["unknown_provider"].wait_keys
    assert reasons["unknown_location"].path == "$.appointment.location_code"
    bad = appointment(site="S1", source="epic", appointment_id="A1", provider_code="9941339109")
    (failure,) = validate(view, bad).failures
    assert failure.reason == "invalid_npi"


def test_a_cost_centre_out_of_effect_is_a_failure_of_its_own() -> None:
    event = appointment(
        site="S1", source="x", appointment_id="A1", on=dt.date(2025, 3, 10), location_code="L-1"
    )
    (failure,) = validate(_view(), event).failures
    assert (failure.reason, failure.offending_value) == ("inactive_cost_centre", "CC-2")


def test_charges_and_payments_resolve_payer_class() -> None:
    view = _view()
    ok = validate(
        view, charge(site="S", source="b", charge_id="C1", service_code="99213", payer_code="PY-1")
    )
    assert ok.enrichment is not None
    assert ok.enrichment.payer_class is PayerClass.MEDICAID
    self_pay = PaymentPosted(
        event_id="p1",
        occurred_at=AT,
        recorded_at=AT,
        source_system="b",
        site="S",
        correlation_id="p1",
        entity_key="p1",
        entity_version=1,
        payment_id="p1",
        amount=Money(amount_minor=100, currency="USD"),
        received_on=dt.date(2025, 1, 2),
    )
    paid = validate(view, self_pay)
    assert paid.enrichment is not None
    assert paid.enrichment.payer_class is PayerClass.SELF_PAY


def test_the_view_ignores_older_versions_and_reports_what_a_change_touches() -> None:
    view = _view()
    renamed = Provider(provider_id="P-1", npi=VALID_NPIS[1], name="Smith-Jones")
    touched = _load(view, renamed, version=3)
    assert touched == {
        "provider:P-1",
        f"provider_npi:{VALID_NPIS[0]}",
        f"provider_npi:{VALID_NPIS[1]}",
    }
    assert (
        _load(view, Provider(provider_id="P-1", npi=VALID_NPIS[0], name="Old"), version=2) == set()
    )
    assert view.providers["P-1"].name == "Smith-Jones"
    assert VALID_NPIS[0] not in view.provider_by_npi


def test_write_rules_name_the_field() -> None:
    spec = BY_NAME["provider"]
    errors = rules.check(spec, Provider(provider_id="P", npi="9941339109", name="X"))
    assert [e.field for e in errors] == ["npi"]
    xref = CrossReference(
        source_system="a:b", kind=EntityKind.PAYER, source_code="c", canonical_id="d"
    )
    assert [e.field for e in rules.check(BY_NAME["cross_reference"], xref)] == ["source_system"]
    assert BY_NAME["cross_reference"].key_values("epic:provider:1234^SMITH^JOHN") == (
        "epic",
        "provider",
        "1234^SMITH^JOHN",
    )
    assert kv_key("provider", "1234^SMITH JOHN").startswith("provider.")
    assert " " not in kv_key("provider", "1234^SMITH JOHN")


def test_each_failure_waits_for_exactly_the_master_data_that_could_fix_it() -> None:
    view = _view()
    _load(
        view,
        CrossReference(
            source_system="epic",
            kind=EntityKind.PROVIDER,
            source_code="GHOST",
            canonical_id="P-404",
        ),
    )
    cases = {
        # Unknown code: its cross-reference, or the code as a canonical id.
        "DR-NEW": ("unknown_provider", ("xref:epic:provider:DR-NEW", "provider:DR-NEW")),
        # Cross-referenced to a provider that does not exist (yet): that provider too.
        "GHOST": (
            "unknown_provider",
            ("xref:epic:provider:GHOST", "provider:GHOST", "provider:P-404"),
        ),
        # Tried as an NPI: a provider with that NPI would fix it.
        VALID_NPIS[3]: (
            "unknown_provider",
            (
                f"xref:epic:provider:{VALID_NPIS[3]}",
                f"provider:{VALID_NPIS[3]}",
                f"provider_npi:{VALID_NPIS[3]}",
            ),
        ),
        "9941339109": (
            "invalid_npi",
            ("xref:epic:provider:9941339109", "provider:9941339109", "provider_npi:9941339109"),
        ),
    }
    for code, (reason, waits) in cases.items():
        event = appointment(site="S1", source="epic", appointment_id="A1", provider_code=code)
        (failure,) = validate(view, event).failures
        assert (failure.reason, failure.wait_keys) == (reason, waits), code
    # In effect no more on the visit date, found through its NPI: the NPI and the provider.
    late = appointment(
        site="S1",
        source="epic",
        appointment_id="A2",
        on=dt.date(2025, 4, 1),
        provider_code=VALID_NPIS[0],
    )
    (failure,) = validate(view, late).failures
    assert failure.reason == "inactive_provider"
    assert failure.wait_keys == (
        f"xref:epic:provider:{VALID_NPIS[0]}",
        f"provider:{VALID_NPIS[0]}",
        f"provider_npi:{VALID_NPIS[0]}",
        "provider:P-1",
    )
    assert "not in effect on 2025-04-01" in failure.message


def test_a_record_removed_from_the_view_no_longer_resolves() -> None:
    view = _view()
    spec = BY_MODEL[Location]
    event = appointment(site="S1", source="x", appointment_id="A1", location_code="L-1")
    (failure,) = validate(view, event).failures  # resolves, but its cost centre is out of date
    assert failure.reason == "inactive_cost_centre"
    assert view.remove(spec.kv_key("L-1")) == {"location:L-1"}
    (failure,) = validate(view, event).failures
    assert (failure.reason, failure.wait_keys) == (
        "unknown_location",
        ("xref:x:location:L-1", "location:L-1"),
    )
