"""Read one 835 transaction set (ST..SE) into a ``Remittance``, or log why it cannot be.

The 835 is read as a small state machine over its loops: header (BPR, TRN, CUR, REF, DTM),
1000A payer (N1*PR), 1000B payee (N1*PE), 2000 header number (LX, TS3, TS2), 2100 claim (CLP,
CAS, NM1, MIA, MOA, REF, DTM, AMT, QTY), 2110 service line (SVC, DTM, CAS, REF, AMT, QTY, LQ) and
the summary (PLB). A segment outside the loop it belongs to is an error, so a misplaced CAS can
never be attributed to the wrong claim.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from carebus_billing_adapter.adapters.x12 import claim_reader
from carebus_billing_adapter.adapters.x12.balance_report import report_imbalances
from carebus_billing_adapter.adapters.x12.claim_reader import ClaimDraft, ServiceLineDraft
from carebus_billing_adapter.adapters.x12.element_values import ElementReader
from carebus_billing_adapter.adapters.x12.envelope import TransactionSet
from carebus_billing_adapter.adapters.x12.issue_log import IssueLog
from carebus_billing_adapter.adapters.x12.remittance_builder import (
    EnvelopeKeys,
    PaymentDraft,
    ProviderAdjustmentDraft,
    build_remittance,
)
from carebus_billing_adapter.adapters.x12.segments import Delimiters, Segment
from carebus_billing_adapter.domain.remittance import Payee, Payer, Remittance
from carebus_billing_adapter.domain.remittance_rejection import RejectionReason

_Reason = RejectionReason
_HANDLING_CODES = frozenset({"C", "D", "H", "I", "P", "U", "X"})
_CREDIT_DEBIT = frozenset({"C", "D"})
_PAYMENT_METHODS = frozenset({"ACH", "BOP", "CHK", "FWT", "NON"})
_NPI = re.compile(r"\d{10}")
_PLB_PAIRS = 6
_MONEY_SEGMENTS = frozenset({"BPR", "CLP", "CAS", "SVC", "PLB"})


class _Loop(enum.Enum):
    HEADER = "header"
    PAYER = "payer (N1*PR)"
    PAYEE = "payee (N1*PE)"
    DETAIL = "header number (LX)"
    CLAIM = "claim (CLP)"
    LINE = "service line (SVC)"
    SUMMARY = "provider adjustments (PLB)"


_AFTER_PAYEE = frozenset({_Loop.PAYEE, _Loop.DETAIL, _Loop.CLAIM, _Loop.LINE})
_IN_CLAIM = frozenset({_Loop.CLAIM, _Loop.LINE})


@dataclass(slots=True)
class _PartyDraft:
    name: str = ""
    qualifier: str | None = None
    id: str | None = None
    reference_id: str | None = None  # REF*2U for the payer, REF*TJ for the payee


@dataclass(slots=True)
class _TransactionReader:
    reader: ElementReader
    header: Segment
    loop: _Loop = _Loop.HEADER
    bpr: Segment | None = None
    payment: PaymentDraft = field(default_factory=PaymentDraft)
    payer: _PartyDraft | None = None
    payee: _PartyDraft | None = None
    claims: list[ClaimDraft] = field(default_factory=list)
    provider_adjustments: list[ProviderAdjustmentDraft] = field(default_factory=list)

    @property
    def issues(self) -> IssueLog:
        return self.reader.issues

    @property
    def claim(self) -> ClaimDraft:
        return self.claims[-1]

    @property
    def line(self) -> ServiceLineDraft:
        return self.claims[-1].lines[-1]

    def misplaced(self, segment: Segment, detail: str | None = None) -> None:
        if segment.tag in _MONEY_SEGMENTS:
            self.reader.money_gaps += 1
        self.issues.add(
            _Reason.UNEXPECTED_SEGMENT,
            segment,
            detail or f"segment is not allowed in the {self.loop.value} loop",
            claim=self.reader.claim,
        )

    def close_claim(self) -> None:
        if self.loop in _IN_CLAIM:
            self.claim.tainted = self.reader.money_gaps > self.claim.money_gaps_before
            self.reader.claim = None

    def read(self, segment: Segment) -> None:
        handler = _HANDLERS.get(segment.tag)
        if handler is None:
            self.misplaced(segment, "segment is not part of an 835 remittance")
        else:
            handler(self, segment)

    # -- header -------------------------------------------------------------------------------

    def on_bpr(self, segment: Segment) -> None:
        if self.loop is not _Loop.HEADER or self.bpr is not None:
            return self.misplaced(segment)
        self.bpr = segment
        read = self.reader
        self.payment.handling_code = read.code(segment, 1, _HANDLING_CODES)
        amount = read.amount(segment, 2)
        debit = read.code(segment, 3, _CREDIT_DEBIT) == "D"
        self.payment.amount_minor = None if amount is None else (-amount if debit else amount)
        self.payment.method = read.code(segment, 4, _PAYMENT_METHODS)
        self.payment.date = read.date(segment, 16, required=True)

    def on_trn(self, segment: Segment) -> None:
        if self.loop is not _Loop.HEADER or self.payment.trace_number is not None:
            return self.misplaced(segment)
        self.payment.trace_number = self.reader.text(segment, 2, required=True) or ""
        self.payment.originator_id = self.reader.text(segment, 3)

    def on_cur(self, segment: Segment) -> None:
        if self.loop is not _Loop.HEADER:
            return self.misplaced(segment)
        currency = self.reader.text(segment, 2, required=True)
        if currency not in (None, "USD"):
            self.issues.add(
                _Reason.UNSUPPORTED_CURRENCY,
                segment,
                "currency is not supported, only USD",
                element="CUR02",
            )

    def on_ignored_header(self, segment: Segment) -> None:
        if self.loop is not _Loop.HEADER:
            self.misplaced(segment)

    def on_n1(self, segment: Segment) -> None:
        entity = self.reader.code(segment, 1, ("PR", "PE"))
        party = _PartyDraft(
            name=self.reader.text(segment, 2, required=True) or "",
            qualifier=segment.element(3) or None,
            id=segment.element(4) or None,
        )
        if entity == "PR" and self.loop is _Loop.HEADER:
            self.payer, self.loop = party, _Loop.PAYER
        elif entity == "PE" and self.loop in (_Loop.HEADER, _Loop.PAYER):
            self.payee, self.loop = party, _Loop.PAYEE
            if party.qualifier == "XX" and not _NPI.fullmatch(party.id or ""):
                self.issues.add(
                    _Reason.INVALID_CODE,
                    segment,
                    "NPI is not 10 digits",
                    element="N104",
                )
        elif entity is not None:
            self.misplaced(segment)

    def on_party_detail(self, segment: Segment) -> None:
        if self.loop not in (_Loop.PAYER, _Loop.PAYEE):
            self.misplaced(segment)

    def on_per(self, segment: Segment) -> None:
        if self.loop not in (_Loop.PAYER, _Loop.PAYEE, _Loop.CLAIM):
            self.misplaced(segment)

    def on_ref(self, segment: Segment) -> None:
        qualifier, value = segment.element(1), self.reader.text(segment, 2, required=True)
        if self.loop is _Loop.SUMMARY:
            self.misplaced(segment)
        elif self.loop is _Loop.PAYER and qualifier == "2U" and self.payer:
            self.payer.reference_id = value
        elif self.loop is _Loop.PAYEE and qualifier == "TJ" and self.payee:
            self.payee.reference_id = value
        elif self.loop is _Loop.LINE and qualifier == "6R":
            self.line.line_control_number = value

    def on_dtm(self, segment: Segment) -> None:
        if self.loop is _Loop.CLAIM:
            claim_reader.read_claim_dtm(self.reader, segment, self.claim)
        elif self.loop is _Loop.LINE:
            claim_reader.read_line_dtm(self.reader, segment, self.line)
        elif self.loop is _Loop.HEADER:
            date = self.reader.date(segment, 2, required=True)
            if segment.element(1) == "405":
                self.payment.production_date = date
        else:
            self.misplaced(segment)

    # -- detail -------------------------------------------------------------------------------

    def on_lx(self, segment: Segment) -> None:
        if self.loop is _Loop.SUMMARY:
            return self.misplaced(segment)
        self.close_claim()
        self.loop = _Loop.DETAIL

    def on_ts(self, segment: Segment) -> None:
        if self.loop is not _Loop.DETAIL:
            self.misplaced(segment)

    def on_clp(self, segment: Segment) -> None:
        if self.loop is _Loop.SUMMARY:
            return self.misplaced(segment)
        self.close_claim()
        self.claims.append(claim_reader.read_clp(self.reader, segment))
        self.loop = _Loop.CLAIM

    def on_cas(self, segment: Segment) -> None:
        if self.loop is _Loop.CLAIM:
            self.claim.adjustments += claim_reader.read_cas(self.reader, segment)
        elif self.loop is _Loop.LINE:
            self.line.adjustments += claim_reader.read_cas(self.reader, segment)
        else:
            self.misplaced(segment, f"claim adjustment outside a claim ({self.loop.value} loop)")

    def on_nm1(self, segment: Segment) -> None:
        if self.loop is not _Loop.CLAIM:
            return self.misplaced(segment)
        claim_reader.read_nm1(self.reader, segment, self.claim)

    def on_claim_detail(self, segment: Segment) -> None:
        if self.loop is not _Loop.CLAIM:
            self.misplaced(segment)

    def on_amount_or_quantity(self, segment: Segment) -> None:
        if self.loop not in _IN_CLAIM:
            self.misplaced(segment)

    def on_svc(self, segment: Segment) -> None:
        if self.loop not in _IN_CLAIM:
            return self.misplaced(segment, "service line outside a claim")
        self.claim.lines.append(claim_reader.read_svc(self.reader, segment))
        self.loop = _Loop.LINE

    def on_lq(self, segment: Segment) -> None:
        if self.loop is not _Loop.LINE:
            self.misplaced(segment)

    # -- summary ------------------------------------------------------------------------------

    def on_plb(self, segment: Segment) -> None:
        if self.loop not in _AFTER_PAYEE and self.loop is not _Loop.SUMMARY:
            return self.misplaced(segment)
        self.close_claim()
        self.loop = _Loop.SUMMARY
        read = self.reader
        provider_id = read.text(segment, 1, required=True) or ""
        fiscal_period = read.date(segment, 2, required=True)
        pairs = 0
        for pair in range(_PLB_PAIRS):
            reason_at, amount_at = 3 + 2 * pair, 4 + 2 * pair
            if not (segment.element(reason_at) or segment.element(amount_at)):
                continue
            pairs += 1
            reason, _, reference = segment.element(reason_at).partition(read.delimiters.component)
            if not reason:
                self.issues.add(
                    _Reason.MISSING_ELEMENT,
                    segment,
                    "required adjustment reason code is missing",
                    element=f"PLB{reason_at:02d}-1",
                )
            amount = read.amount(segment, amount_at)
            if not (reason and amount is not None and fiscal_period is not None):
                read.money_gaps += 1
            else:
                self.provider_adjustments.append(
                    ProviderAdjustmentDraft(
                        provider_id=provider_id,
                        fiscal_period_date=fiscal_period,
                        reason_code=reason,
                        reference=reference or None,
                        amount_minor=amount,
                    )
                )
        if pairs == 0:
            read.text(segment, 3, required=True)

    def finish(self) -> None:
        self.close_claim()
        for present, what in (
            (self.bpr, "BPR (financial information)"),
            (self.payment.trace_number, "TRN (reassociation trace number)"),
            (self.payer, "N1*PR (payer identification)"),
            (self.payee, "N1*PE (payee identification)"),
        ):
            if present is None:
                self.issues.add(_Reason.MISSING_SEGMENT, self.header, f"835 has no {what} segment")


_Handler = Callable[[_TransactionReader, Segment], None]
_R = _TransactionReader
_HANDLERS: dict[str, _Handler] = {
    "BPR": _R.on_bpr,
    "TRN": _R.on_trn,
    "CUR": _R.on_cur,
    "NTE": _R.on_ignored_header,
    "REF": _R.on_ref,
    "DTM": _R.on_dtm,
    "N1": _R.on_n1,
    "N2": _R.on_party_detail,
    "N3": _R.on_party_detail,
    "N4": _R.on_party_detail,
    "RDM": _R.on_party_detail,
    "PER": _R.on_per,
    "LX": _R.on_lx,
    "TS3": _R.on_ts,
    "TS2": _R.on_ts,
    "CLP": _R.on_clp,
    "CAS": _R.on_cas,
    "NM1": _R.on_nm1,
    "MIA": _R.on_claim_detail,
    "MOA": _R.on_claim_detail,
    "AMT": _R.on_amount_or_quantity,
    "QTY": _R.on_amount_or_quantity,
    "SVC": _R.on_svc,
    "LQ": _R.on_lq,
    "PLB": _R.on_plb,
}


def _payer(draft: _PartyDraft, originator_id: str | None) -> Payer:
    return Payer(name=draft.name, id=draft.reference_id or draft.id or originator_id)


def _payee(draft: _PartyDraft) -> Payee:
    npi = draft.id if draft.qualifier == "XX" else None
    tin = draft.reference_id or (draft.id if draft.qualifier == "FI" else None)
    return Payee(name=draft.name, npi=npi, tin=tin)


def read_remittance(
    transaction: TransactionSet, delimiters: Delimiters, file_digest: str, issues: IssueLog
) -> Remittance | None:
    """The remittance of an 835 transaction set, or None when ``issues`` grew while reading."""
    issues_before = len(issues)
    state = _TransactionReader(ElementReader(issues, delimiters), transaction.header)
    for segment in transaction.body:
        state.read(segment)
    state.finish()
    if state.bpr is None or state.payer is None or state.payee is None:
        return None
    remittance = build_remittance(
        keys=EnvelopeKeys.of(transaction),
        payment=state.payment,
        payer=_payer(state.payer, state.payment.originator_id),
        payee=_payee(state.payee),
        claims=state.claims,
        provider_adjustments=state.provider_adjustments,
        file_digest=file_digest,
    )
    every_amount_read = state.reader.money_gaps == 0
    report_imbalances(remittance, state.bpr, state.claims, every_amount_read, issues)
    return remittance if len(issues) == issues_before else None
