"""Parse an X12 835 remittance file: all of it, or none of it.

A hand-written tokenizer and loop reader, not a library: none evaluated gave exact error
positions, Decimal money and the balancing rules (docs/decisions/002).
"""

from __future__ import annotations

import hashlib
import re

import msgspec

from carebus_billing_adapter.adapters.x12.envelope import split_transactions
from carebus_billing_adapter.adapters.x12.issue_log import IssueLog
from carebus_billing_adapter.adapters.x12.remittance_reader import read_remittance
from carebus_billing_adapter.adapters.x12.segments import Delimiters, Segment
from carebus_billing_adapter.adapters.x12.tokenizer import tokenize
from carebus_billing_adapter.domain.remittance import Remittance
from carebus_billing_adapter.domain.remittance_rejection import (
    Rejection,
    RejectionReason,
    RemittanceRejected,
)

SUPPORTED_TRANSACTION = "835"


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        if data.isascii():
            return data
        try:
            data.encode("utf-8")
            return data
        except UnicodeEncodeError:
            # Lone surrogates: no decoded file holds them; read the bytes the text stands for
            # (not UTF-8, so Latin-1 below), as the same file given as bytes would be.
            data = data.encode("utf-8", "surrogatepass")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # X12 extended character sets predate UTF-8


# Canonical separators of the digest: control characters, which X12 data never holds.
_SEGMENT, _ELEMENT, _REPETITION, _COMPONENT = "\x1c", "\x1d", "\x1e", "\x1f"
_CONTROL = re.compile("[\x1c-\x1f]")


def normalized_digest(segments: list[Segment], delimiters: Delimiters) -> str:
    """sha256 over the segments' structure, so the same content written with other separators or
    line breaks has the same digest. The separators declared in ISA11/ISA16 are left out.

    The file's separators are rewritten to fixed control characters; a file whose data holds
    such characters itself (not valid X12) is digested from an explicit nested structure
    instead, so that no two different files can share a digest."""
    table = {ord(delimiters.component): _COMPONENT}
    if delimiters.repetition:
        table[ord(delimiters.repetition)] = _REPETITION
    lines = []
    for segment in segments:
        elements = segment.elements
        if segment.tag == "ISA":
            drop = {16, 11} if delimiters.repetition else {16}
            elements = tuple("" if n in drop else v for n, v in enumerate(elements, 1))
        lines.append(_ELEMENT.join((segment.tag, *elements)))
    text = _SEGMENT.join(lines)
    # Data (what is left without any separator) holding a control character: not plain X12.
    separators_only = dict.fromkeys([ord(_SEGMENT), ord(_ELEMENT), *table])
    if _CONTROL.search(text.translate(separators_only)):
        return _structured_digest(segments, delimiters)
    return hashlib.sha256(text.translate(table).encode("utf-8", "surrogateescape")).hexdigest()


def _structured_digest(segments: list[Segment], delimiters: Delimiters) -> str:
    def element(tag: str, number: int, value: str) -> list[list[str]]:
        if tag == "ISA" and (number == 16 or (number == 11 and delimiters.repetition)):
            return []
        repeats = value.split(delimiters.repetition) if delimiters.repetition else [value]
        return [repeat.split(delimiters.component) for repeat in repeats]

    canonical = [
        [segment.tag, [element(segment.tag, n, v) for n, v in enumerate(segment.elements, 1)]]
        for segment in segments
    ]
    return hashlib.sha256(msgspec.json.encode(canonical)).hexdigest()


def parse_835(data: bytes | str) -> list[Remittance]:
    """One Remittance per 835 transaction set of the file.

    Raises RemittanceRejected listing every issue found (envelope, syntax, values, balancing)
    when anything is wrong, so a file is never half-posted.
    """
    text = _decode(data)
    issues = IssueLog()
    tokenized = tokenize(text, issues)
    if tokenized is None:
        digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
        raise RemittanceRejected(Rejection(file_digest=digest, issues=issues.issues))
    digest = normalized_digest(tokenized.segments, tokenized.delimiters)
    transactions = split_transactions(tokenized.segments, issues)
    remittances = []
    for transaction in transactions:
        kind = transaction.header.element(1)
        if kind != SUPPORTED_TRANSACTION:
            issues.add(
                RejectionReason.UNSUPPORTED_TRANSACTION,
                transaction.header,
                f"transaction set is not supported, only {SUPPORTED_TRANSACTION}",
                element="ST01",
            )
            continue
        remittance = read_remittance(transaction, tokenized.delimiters, digest, issues)
        if remittance is not None:
            remittances.append(remittance)
    if not transactions and not len(issues):
        issues.add(RejectionReason.ENVELOPE_STRUCTURE, None, "file holds no transaction set")
    if len(issues):
        raise RemittanceRejected(Rejection(file_digest=digest, issues=issues.issues))
    return remittances
