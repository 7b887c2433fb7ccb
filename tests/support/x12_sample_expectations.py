"""Committed outcome of every X12 sample in tests/data: a behaviour change fails a test.

Each rejected file maps to its issues as "reason@ELEMENT" strings; accepted files map to
ACCEPTED with (BPR02 in cents, number of claims) per transaction.
"""

from __future__ import annotations

from tests.support.x12 import LFH_835, PYX12_835

LFH = "x12/LinuxForHealth-x12/src/tests/resources"
UNSUPPORTED = frozenset({"unsupported_transaction@ST01"})

ACCEPTED: dict[str, list[tuple[int, int]]] = {
    f"{LFH_835}/medicare-part-a.835": [(15_000_000, 2)],
}

REJECTED: dict[str, frozenset[str]] = {
    # BPR16 has month 23.
    f"{LFH_835}/managed-care.835": frozenset({"invalid_date@BPR16"}),
    # The date sits in BPR15 (one separator short) and SVC01 uses '>' although ISA16 is ':'.
    f"{LFH_835}/cob-contractural-adjustment.835": frozenset(
        {"missing_element@BPR16", "invalid_composite@SVC01-1"}
    ),
    f"{LFH_835}/secondary-payment.835": frozenset(
        {"missing_element@BPR16", "invalid_composite@SVC01-1"}
    ),
    # SVC*HC*24599.00: the procedure code was split off, shifting the amounts one element right.
    f"{LFH_835}/tertiary-payment.835": frozenset(
        {"missing_element@BPR16", "invalid_composite@SVC01-2", "service_line_unbalanced@SVC03"}
    ),
    # Claims -510.25, PLB -977.94: the payment should be 467.69, BPR02 says 5950.21.
    PYX12_835: frozenset({"payment_unbalanced@BPR02"}),
    "x12/azoner-pyx12/extracted/997_expected_for_835_reversals.997": UNSUPPORTED,
    # ST02 4321 but SE02 4323.
    f"{LFH}/271_005010X279A1/subscriber-health-benefit-check-error.271": UNSUPPORTED
    | {"control_number_mismatch@SE02"},
}

# Non-835 transactions with sound envelopes (paths relative to LFH).
UNSUPPORTED_ONLY = (
    "270_005010X279A1/dependent-health-benefit-check.270",
    "270_005010X279A1/subscriber-health-benefit-check.270",
    "271_005010X279A1/dependent-health-benefit-check.271",
    "271_005010X279A1/subscriber-health-benefit-check.271",
    "276_005010X212/claim-level-status-ncpdp.276",
    "276_005010X212/claim-level-status.276",
    "276_005010X212/information-receiver-level-status.276",
    "276_005010X212/provider-level-status.276",
    "277_005010X212/claim-level-status-ncpdp.277",
    "277_005010X212/claim-level-status.277",
    "277_005010X212/information-receiver-level-status.277",
    "277_005010X212/provider-level-status.277",
    "834_005010X220A1/add-dependent.834",
    "834_005010X220A1/add-subscriber-coverage.834",
    "834_005010X220A1/cancel-dependent.834",
    "834_005010X220A1/change-subscriber-information.834",
    "834_005010X220A1/enroll-employee-managed-care.834",
    "834_005010X220A1/enroll-employee-multiple-products.834",
    "834_005010X220A1/reinstate-employee-coverage-level.834",
    "834_005010X220A1/reinstate-employee.834",
    "834_005010X220A1/reinstate-member-eligiblity-ins.834",
    "834_005010X220A1/terminate-subscriber-eligibility.834",
    "837_004010X096A1/automobile-accident.837",
    "837_004010X096A1/homeowners.837",
    "837_004010X096A1/institutional-ppo-repriced.837",
    "837_004010X096A1/institutional.837",
    "837_004010X096A1/workers-compensation.837",
    "837_004010X098A1/coordination-of-benefits.837",
    "837_004010X098A1/dependent-commercial-insurance-01.837",
    "837_004010X098A1/dependent-commercial-insurance-02.837",
    "837_004010X098A1/dependent-commercial-insurance-03.837",
    "837_004010X098A1/patient-is-dependent.837",
    "837_004010X098A1/patient-is-subscriber.837",
    "837_005010X222A2/demo.ambulance.example5.837",
    "837_005010X222A2/demo.autoaccident.837",
    "837_005010X222A2/demo.cob.2ndary.example4.837",
    "837_005010X222A2/demo.cob.example3.A.837",
    "837_005010X222A2/demo.cob.example3.B.837",
    "837_005010X222A2/demo.cob.example3.C.837",
    "837_005010X222A2/demo.cob.example4.837",
    "837_005010X222A2/demo.drug.example10.1.837",
    "837_005010X222A2/demo.drug.example10.2.837",
    "837_005010X222A2/demo.drug.example10.3.837",
    "837_005010X222A2/demo.example1.837",
    "837_005010X222A2/demo.example11.837",
    "837_005010X222A2/demo.example12.837",
    "837_005010X222A2/demo.example2.837",
    "837_005010X222A2/demo.example6.837",
    "837_005010X222A2/demo.example7.837",
    "837_005010X222A2/demo.example8.837",
    "837_005010X222A2/demo.example9.837",
    "837_005010X223A3/institutional-claim.837i",
    "837_005010X223A3/out-of-network-repriced-claim.837i",
    "837_005010X223A3/ppo-repriced-claim.837i",
    "837_005010X223A3/two-claims-single-provider.837i",
)

EXPECTED_REJECTIONS = REJECTED | {f"{LFH}/{name}": UNSUPPORTED for name in UNSUPPORTED_ONLY}
