"""HL7 v2.5.1 messages as the scheduling (SIU) and billing (DFT) systems send them.

Segments are joined with CR, the HL7 segment terminator. Timestamps carry their UTC offset,
so the adapters never have to guess the sender's zone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

ENCODING = "^~\\&"

# Canonical event → (trigger, SCH-25 filler status).
SIU_TRIGGERS: dict[str, tuple[str, str]] = {
    "booked": ("S12", "Booked"),
    "rescheduled": ("S13", "Booked"),
    "modified": ("S14", "Booked"),
    "checked_in": ("S14", "Arrived"),
    "completed": ("S14", "Complete"),
    "cancelled": ("S15", "Cancelled"),
    "no_show": ("S26", "Noshow"),
}


def ts(moment: dt.datetime) -> str:
    """HL7 DTM with seconds and offset: 20250310091500-0600."""
    if moment.tzinfo is None:
        raise ValueError("HL7 timestamps here always carry an offset")
    return moment.strftime("%Y%m%d%H%M%S%z")


def money(amount_minor: int) -> str:
    sign = "-" if amount_minor < 0 else ""
    whole, cents = divmod(abs(amount_minor), 100)
    return f"{sign}{whole}.{cents:02d}"


def _segment(name: str, fields: dict[int, str]) -> str:
    last = max(fields) if fields else 0
    return "|".join([name, *(fields.get(i, "") for i in range(1, last + 1))])


def msh(sender: str, site: str, sent_at: dt.datetime, message_type: str, control_id: str) -> str:
    # MSH-1 is the field separator itself, so MSH-2 is the first joined field.
    return "|".join(
        [
            "MSH", ENCODING, sender, site, "CAREBUS", "CAREBUS", ts(sent_at), "",
            message_type, control_id, "P", "2.5.1",
        ]
    )  # fmt: skip


@dataclass(frozen=True)
class SiuContent:
    control_id: str
    sent_at: dt.datetime
    site: str
    event: str  # canonical event (SIU_TRIGGERS)
    appointment_id: str
    patient_ref: str
    provider_code: str
    provider_family: str
    provider_given: str
    location_id: str
    department_id: str
    service_code: str
    service_text: str
    slot_start: dt.datetime
    slot_end: dt.datetime
    reason: str | None = None  # cancellation / no-show reason


def siu(m: SiuContent, *, sender: str, drop_pid: bool = False) -> bytes:
    trigger, filler_status = SIU_TRIGGERS[m.event]
    minutes = int((m.slot_end - m.slot_start).total_seconds() // 60)
    start, end = ts(m.slot_start), ts(m.slot_end)
    event_reason = f"{m.reason.upper().replace(' ', '_')[:10]}^{m.reason}" if m.reason else ""
    segments = [
        msh(sender, m.site, m.sent_at, f"SIU^{trigger}^SIU_{trigger}", m.control_id),
        _segment(
            "SCH",
            {
                1: m.appointment_id,
                2: m.appointment_id,
                6: event_reason,
                7: f"{m.service_code}^{m.service_text}",
                8: "ROUTINE",
                9: str(minutes),
                10: "min",
                11: f"^^{minutes}^{start}^{end}",
                25: filler_status,
            },
        ),
        _segment("PID", {1: "1", 3: f"{m.patient_ref}^^^{m.site}^MR"}),
        _segment("PV1", {1: "1", 2: "O", 3: f"{m.location_id}^^^{m.site}", 10: m.department_id}),
        _segment(
            "AIS", {1: "1", 3: f"{m.service_code}^{m.service_text}^CPT", 4: start, 7: str(minutes)}
        ),
        _segment("AIL", {1: "1", 3: f"{m.location_id}^^^{m.site}", 6: start}),
        _segment(
            "AIP",
            {1: "1", 3: f"{m.provider_code}^{m.provider_family}^{m.provider_given}", 6: start},
        ),
    ]
    if drop_pid:
        segments = [s for s in segments if not s.startswith("PID|")]
    return "\r".join(segments).encode()


@dataclass(frozen=True)
class Ft1:
    """One FT1 financial transaction."""

    transaction_id: str
    kind: str  # CG charge | CD credit (reversal) | PY payment
    at: dt.datetime
    amount_minor: int  # as the billing system signs it (payments and credits negative)
    units: int = 1
    service_code: str = ""
    service_text: str = ""
    department_id: str = ""
    plan_code: str = ""
    location_id: str = ""
    npi: str = ""
    provider_family: str = ""
    provider_given: str = ""
    amount_text: str | None = None  # overrides the amount as written (malformed input)


def dft(
    *,
    sender: str,
    site: str,
    control_id: str,
    sent_at: dt.datetime,
    patient_ref: str,
    visit_number: str,
    location_id: str,
    department_id: str,
    lines: list[Ft1],
) -> bytes:
    segments = [
        msh(sender, site, sent_at, "DFT^P03^DFT_P03", control_id),
        _segment("EVN", {1: "P03", 2: ts(sent_at)}),
        _segment("PID", {1: "1", 3: f"{patient_ref}^^^{site}^MR"}),
        _segment(
            "PV1",
            {1: "1", 2: "O", 3: f"{location_id}^^^{site}", 10: department_id, 19: visit_number},
        ),
    ]
    for n, line in enumerate(lines, 1):
        fields: dict[int, str] = {
            1: str(n),
            2: line.transaction_id,
            4: ts(line.at),
            6: line.kind,
            10: str(line.units),
            11: line.amount_text or money(line.amount_minor),
        }
        if line.kind == "PY":
            fields[7] = "COPAY^Patient payment at the desk"
        else:
            code = f"{line.service_code}^{line.service_text}^CPT"
            fields.update(
                {
                    7: code,
                    13: line.department_id,
                    14: line.plan_code,
                    16: f"{line.location_id}^^^{site}",
                    20: f"{line.npi}^{line.provider_family}^{line.provider_given}^^^^^^NPI^^^^NPI",
                    25: code,
                }
            )
        segments.append(_segment("FT1", fields))
    return "\r".join(segments).encode()


def garbage(label: str) -> bytes:
    """Bytes a misconfigured sender put on the HL7 port: not a message at all."""
    return f"PING {label} keepalive from a misconfigured interface engine".encode()
