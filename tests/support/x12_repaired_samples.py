"""The broken 835 samples with their known defects fixed, in memory (the files stay untouched).

Each repair undoes exactly the defects the expectation table names, so a repaired sample being
accepted shows those defects were the only reasons for its rejection.
"""

from __future__ import annotations

from tests.support.x12 import LFH_835, PYX12_835, replace_once, sample_text


def _bpr16_from_bpr15(text: str) -> str:
    # BPR*I*34.00*C*CHK + 11 separators puts the date in BPR15; BPR16 needs 12.
    head, _, rest = text.partition("BPR*")
    bpr, _, tail = rest.partition("~")
    fixed = bpr.replace("CHK***********", "CHK************")
    return f"{head}BPR*{fixed}~{tail}"


def managed_care() -> str:
    text = sample_text(f"{LFH_835}/managed-care.835")
    return replace_once(text, "*20002316~", "*20020316~")


def cob_contractual_adjustment() -> str:
    text = _bpr16_from_bpr15(sample_text(f"{LFH_835}/cob-contractural-adjustment.835"))
    return replace_once(text, "SVC*HC>55669*", "SVC*HC:55669*")


def secondary_payment() -> str:
    text = _bpr16_from_bpr15(sample_text(f"{LFH_835}/secondary-payment.835"))
    text = replace_once(text, "SVC*HC>12345>26*", "SVC*HC:12345:26*")
    return replace_once(text, "SVC*HC>66543>26*", "SVC*HC:66543:26*")


def tertiary_payment() -> str:
    text = _bpr16_from_bpr15(sample_text(f"{LFH_835}/tertiary-payment.835"))
    return replace_once(
        text, "SVC*HC*24599.00*1766.50*187.50**1~", "SVC*HC:24599*1766.50*187.50**1~"
    )


def pyx12_reversals() -> str:
    # Claims pay -510.25 and the PLB amounts sum to -977.94, so the payment is 467.69.
    return replace_once(sample_text(PYX12_835), "BPR*I*5950.21*", "BPR*I*467.69*")


REPAIRED = {
    f"{LFH_835}/managed-care.835": managed_care,
    f"{LFH_835}/cob-contractural-adjustment.835": cob_contractual_adjustment,
    f"{LFH_835}/secondary-payment.835": secondary_payment,
    f"{LFH_835}/tertiary-payment.835": tertiary_payment,
    PYX12_835: pyx12_reversals,
}
