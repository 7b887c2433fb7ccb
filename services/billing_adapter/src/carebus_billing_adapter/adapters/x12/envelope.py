"""ISA/GS/ST envelopes: nest the segments and check every trailer against its header.

ISA13 = IEA02, IEA01 = number of groups, GS06 = GE02, GE01 = number of transactions,
ST02 = SE02, SE01 = number of segments from ST to SE inclusive. Files that start at GS or ST (no
interchange envelope) are accepted; one interchange per file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from carebus_billing_adapter.adapters.x12.issue_log import IssueLog
from carebus_billing_adapter.adapters.x12.segments import Segment
from carebus_billing_adapter.domain.remittance_rejection import RejectionReason

_Reason = RejectionReason


@dataclass(frozen=True, slots=True)
class TransactionSet:
    interchange_header: Segment | None  # ISA
    group_header: Segment | None  # GS
    header: Segment  # ST
    body: list[Segment]  # between ST and SE


@dataclass(slots=True)
class _OpenGroup:
    header: Segment
    transaction_count: int = 0


@dataclass(slots=True)
class _OpenTransaction:
    header: Segment
    body: list[Segment] = field(default_factory=list)


_MAX_DIGITS = 18  # X12 counts and control numbers have at most 10


def _number(text: str) -> int | None:
    """A count or control number: ASCII digits, not too many of them (``"²".isdigit()`` is
    true, and int() of thousands of digits is refused), else None."""
    if text.isascii() and text.isdigit() and len(text) <= _MAX_DIGITS:
        return int(text)
    return None


def _same_number(left: str, right: str) -> bool:
    # Control numbers are numeric; "1" and "0001" name the same group.
    left_number, right_number = _number(left), _number(right)
    if left_number is not None and right_number is not None:
        return left_number == right_number
    return left == right


def _check_count(issues: IssueLog, trailer: Segment, what: str, actual: int) -> None:
    declared = _number(trailer.element(1))
    if declared is None:
        issues.add(
            _Reason.COUNT_MISMATCH,
            trailer,
            f"{what} is not a number of at most {_MAX_DIGITS} digits",
            element=trailer.element_name(1),
        )
    elif declared != actual:
        issues.add(
            _Reason.COUNT_MISMATCH,
            trailer,
            f"{what} {declared} does not match {actual}",
            element=trailer.element_name(1),
        )


def _check_control(
    issues: IssueLog, trailer: Segment, header: Segment, header_element: int, what: str
) -> None:
    declared, expected = trailer.element(2), header.element(header_element)
    if not _same_number(declared, expected):
        issues.add(
            _Reason.CONTROL_NUMBER_MISMATCH,
            trailer,
            f"{what} does not match {header.element_name(header_element)} "
            f"(segment {header.position})",
            element=trailer.element_name(2),
        )


class _EnvelopeWalker:
    def __init__(self, issues: IssueLog) -> None:
        self.issues = issues
        self.interchange: Segment | None = None
        self.closed = False  # IEA seen
        self.group: _OpenGroup | None = None
        self.group_count = 0
        self.transaction: _OpenTransaction | None = None
        self.transactions: list[TransactionSet] = []
        # A run of stray segments is one issue at its first segment: a megabyte of them made
        # one issue each (46,000 in a 1 MB file), none telling a person more than the first.
        self.in_stray_run = False

    def structure(self, segment: Segment, detail: str) -> None:
        self.issues.add(_Reason.ENVELOPE_STRUCTURE, segment, detail)

    def stray(self, segment: Segment, detail: str) -> None:
        if not self.in_stray_run:
            self.structure(segment, f"{detail} (and any segments straight after it)")
        self.in_stray_run = True

    def feed(self, segment: Segment, is_first: bool) -> None:
        if self.closed:
            self.stray(segment, "segment after IEA closed the interchange")
            return
        handler = {
            "ISA": self.on_isa,
            "GS": self.on_gs,
            "ST": self.on_st,
            "SE": self.on_se,
            "GE": self.on_ge,
            "IEA": self.on_iea,
        }.get(segment.tag)
        if handler is not None:
            self.in_stray_run = False
            handler(segment, is_first)
        elif self.transaction is not None:
            self.in_stray_run = False
            self.transaction.body.append(segment)
        elif segment.tag == "TA1" and self.interchange is not None and self.group is None:
            pass  # interchange acknowledgements travel outside groups
        else:
            self.stray(segment, "segment outside a transaction set (ST/SE)")

    def abandon_transaction(self, at: Segment) -> None:
        if self.transaction is not None:
            opened = self.transaction.header
            self.structure(at, f"ST (segment {opened.position}) has no SE")
            self.transaction = None

    def abandon_group(self, at: Segment) -> None:
        if self.group is not None:
            opened = self.group.header
            self.structure(at, f"GS (segment {opened.position}) has no GE")
            self.group = None

    def on_isa(self, segment: Segment, is_first: bool) -> None:
        if is_first:
            self.interchange = segment
        else:
            self.structure(segment, "only one interchange per file is supported")

    def on_gs(self, segment: Segment, is_first: bool) -> None:
        self.abandon_transaction(segment)
        self.abandon_group(segment)
        self.group = _OpenGroup(segment)
        self.group_count += 1

    def on_st(self, segment: Segment, is_first: bool) -> None:
        self.abandon_transaction(segment)
        # A bare ST file may hold several transactions; inside an envelope each needs its GS.
        if self.group is None and (self.interchange is not None or self.group_count):
            self.structure(segment, "ST outside a functional group (GS/GE)")
        if self.group is not None:
            self.group.transaction_count += 1
        self.transaction = _OpenTransaction(segment)

    def on_se(self, segment: Segment, is_first: bool) -> None:
        if self.transaction is None:
            self.structure(segment, "SE without a matching ST")
            return
        opened, self.transaction = self.transaction, None
        _check_count(self.issues, segment, "segment count", len(opened.body) + 2)
        _check_control(self.issues, segment, opened.header, 2, "transaction control number")
        self.transactions.append(
            TransactionSet(
                interchange_header=self.interchange,
                group_header=self.group.header if self.group else None,
                header=opened.header,
                body=opened.body,
            )
        )

    def on_ge(self, segment: Segment, is_first: bool) -> None:
        self.abandon_transaction(segment)
        if self.group is None:
            self.structure(segment, "GE without a matching GS")
            return
        opened, self.group = self.group, None
        _check_count(self.issues, segment, "transaction set count", opened.transaction_count)
        _check_control(self.issues, segment, opened.header, 6, "group control number")

    def on_iea(self, segment: Segment, is_first: bool) -> None:
        self.abandon_transaction(segment)
        self.abandon_group(segment)
        self.closed = True
        if self.interchange is None:
            self.structure(segment, "IEA without a matching ISA")
            return
        _check_count(self.issues, segment, "functional group count", self.group_count)
        _check_control(self.issues, segment, self.interchange, 13, "interchange control number")

    def finish(self, last: Segment) -> None:
        self.abandon_transaction(last)
        self.abandon_group(last)
        if self.interchange is not None and not self.closed:
            self.structure(last, "interchange has no IEA trailer")


def split_transactions(segments: list[Segment], issues: IssueLog) -> list[TransactionSet]:
    """The complete transaction sets of the file; envelope problems go to ``issues``."""
    walker = _EnvelopeWalker(issues)
    for index, segment in enumerate(segments):
        walker.feed(segment, is_first=index == 0)
    if segments:
        walker.finish(segments[-1])
    return walker.transactions
