"""Event by event: what became of every input of a scenario, for the fault suite.

Independent of the services' code, like the oracle it builds on: the oracle says what each
event must become (:attr:`Expectation.events`, :attr:`Expectation.refusals`); the checker reads
what the suite holds through its public surfaces and classifies every event:

* ``ok``: it became exactly what the oracle says (one ledger entry with the expected lines, or
  no entry for a stale, parked or journal-less event; a refused input kept with its reason);
* ``lost``: it should have left a trace and left none (no entry, no event in its stream, no
  exception record);
* ``duplicated``: it was posted more than once, or stored twice in its stream;
* ``unexpected``: an entry where none belongs, an entry with other lines, or something the
  scenario never sent (an event in a stream or an entry in the ledger nothing explains);
* ``dead_lettered``: not posted, but kept open in the exception store with a transport or
  deliveries reason (a person can re-drive it).

How an event is followed (each link a documented contract field, never a service's code):
a fact matches the adapter event in SCHEDULING or BILLING with the same *natural key* (the
entity's id and version, or for 835 parts the claim, version, group, reason and amount); the
``erp.journal.requested`` events on ERP name that event in ``source_event_ids`` and carry the
``journal_id``; the ledger's entries (``carebus_erp_poster.journal_entry``) or the ERP
sandbox's journals (``carebus_erp_sandbox.journal``) carry the ``journal_id``. An exception
record names the message it keeps by stream and sequence (and event id).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg
import nats
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from carebus_scenario.generator import Scenario
from carebus_scenario.model import (
    BILLING,
    SCHEDULING,
    AdjustmentFact,
    AppointmentFact,
    ChargeFact,
    ClaimFact,
    Fact,
    PaymentFact,
)
from carebus_scenario.oracle import JOURNAL, PARKED, QUEUED_BEHIND, Expectation
from carebus_shared.jetstream.connection import server_list

OK, LOST, DUPLICATED, UNEXPECTED, DEAD_LETTERED = (
    "ok", "lost", "duplicated", "unexpected", "dead_lettered",
)  # fmt: skip
CLASSES = (OK, LOST, DUPLICATED, UNEXPECTED, DEAD_LETTERED)
VALIDATED, ERP = "VALIDATED", "ERP"
# An exception record that keeps a message for a re-drive because it could not be delivered,
# not because of what it says.
DEAD_LETTER_REASONS = frozenset({"deliveries_exhausted", "max_deliveries_exhausted"})

NaturalKey = tuple[Any, ...]
LineKey = tuple[str, str, int, str]  # account, side, amount_minor, currency
Erp = Literal["ledger", "sandbox"]


# -- what the suite holds ----------------------------------------------------------------------
@dataclass(frozen=True)
class StoredEvent:
    """An adapter event as SCHEDULING or BILLING holds it."""

    stream: str
    seq: int
    event_id: str
    body: Mapping[str, Any]


@dataclass(frozen=True)
class JournalRequest:
    seq: int
    event_id: str
    journal_id: str
    source_event_ids: tuple[str, ...]


@dataclass(frozen=True)
class Posted:
    """One entry in the ledger (or one journal the ERP sandbox booked or holds pending)."""

    journal_id: str
    key: str
    site: str | None  # the sandbox's journals name no site
    lines: tuple[LineKey, ...]


@dataclass(frozen=True)
class KeptRecord:
    id: int
    stage: str
    category: str
    reason: str
    status: str
    event_id: str | None
    stream: str | None
    stream_seq: int | None
    raw_digest: str | None

    @property
    def dead_letter(self) -> bool:
        return self.status == "open" and (
            self.category == "transport" or self.reason in DEAD_LETTER_REASONS
        )


@dataclass
class Observed:
    events: list[StoredEvent] = field(default_factory=list)
    validated: dict[int, str] = field(default_factory=dict)  # VALIDATED seq → original id
    requests: list[JournalRequest] = field(default_factory=list)
    posted: list[Posted] = field(default_factory=list)
    records: list[KeptRecord] = field(default_factory=list)


# -- natural keys ---------------------------------------------------------------------------
def fact_keys(scenario: Scenario) -> dict[NaturalKey, str]:
    """Natural key → fact key, for every fact the scenario sends (a repeat counts once).

    An 835's payment and adjustments carry no claim of their own in the scenario's model:
    they take the claim (id, version) of the claim fact before them in the same file."""
    found: dict[NaturalKey, str] = {}
    for delivery in scenario.deliveries:
        claims: dict[str, tuple[str, int]] = {}
        for fact in delivery.facts:
            prefix = fact.key.rsplit(":", 1)[0]
            if isinstance(fact, ClaimFact):
                claims[prefix] = (fact.claim_id, fact.version)
            found.setdefault(natural_key(fact, claims.get(prefix)), fact.key)
    return found


def natural_key(fact: Fact, claim: tuple[str, int] | None = None) -> NaturalKey:
    site = fact.site
    match fact:
        case AppointmentFact():
            return ("appointment", site, fact.appointment_id, fact.version)
        case ChargeFact():
            return ("charge", site, fact.charge_id, fact.reversal)
        case ClaimFact():
            return ("claim", site, fact.claim_id, fact.version)
        case PaymentFact() if claim is not None:
            return ("payment", site, *claim, fact.amount_minor)
        case PaymentFact():
            return ("payment", site, fact.payment_id)
        case AdjustmentFact() if fact.scope == "provider":
            return ("plb", site, fact.payer_code, fact.reason, fact.amount_minor)
        case AdjustmentFact():
            parts = (fact.group, fact.reason, fact.amount_minor, fact.scope)
            return ("adjustment", site, *(claim or (fact.adjustment_id, 0)), *parts)
    raise TypeError(type(fact))


def event_key(body: Mapping[str, Any]) -> NaturalKey:
    """The natural key of an adapter event, from its contract fields."""
    kind, site = str(body.get("event_type", "")), body.get("site")
    try:
        if kind.startswith("scheduling.appointment."):
            return (
                "appointment",
                site,
                body["appointment"]["appointment_id"],
                body["entity_version"],
            )
        if kind in ("billing.charge.posted", "billing.charge.reversed"):
            return ("charge", site, body["charge"]["charge_id"], kind.endswith("reversed"))
        if kind == "billing.claim.adjudicated":
            return ("claim", site, body["claim_id"], body["entity_version"])
        x12 = body.get("claim_id") is not None
        amount = body.get("amount", {}).get("amount_minor")
        if kind == "billing.payment.posted":
            if x12:
                return ("payment", site, body["claim_id"], body["entity_version"], amount)
            return ("payment", site, body["payment_id"])
        if kind == "billing.adjustment.posted":
            if body.get("scope") == "provider":
                return ("plb", site, body["payer_code"], body["reason_code"], amount)
            claim = (
                (body["claim_id"], body["entity_version"]) if x12 else (body["adjustment_id"], 0)
            )
            parts = (body["group_code"], body["reason_code"], amount, body["scope"])
            return ("adjustment", site, *claim, *parts)
    except (KeyError, TypeError, AttributeError):
        pass
    return ("unknown", body.get("event_id"))


# -- the verdict ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Item:
    """One classified event: what it is (no patient data), its class, and why."""

    what: str
    verdict: str
    why: str = ""


@dataclass
class Verdict:
    items: list[Item] = field(default_factory=list)

    @property
    def counts(self) -> Counter[str]:
        return Counter(item.verdict for item in self.items)

    @property
    def events(self) -> int:
        return len(self.items)

    def __getitem__(self, verdict: str) -> int:
        return self.counts[verdict]

    def problems(self, limit: int = 20) -> list[str]:
        """The items that are not ok, said briefly (at most ``limit``)."""
        bad = [i for i in self.items if i.verdict != OK]
        lines = [f"{i.verdict}: {i.what}: {i.why}" for i in bad[:limit]]
        if len(bad) > limit:
            lines.append(f"... and {len(bad) - limit} more")
        return lines


class _Lineage:
    """Who descends from which adapter event: stored copies, requests, entries, records."""

    def __init__(self, observed: Observed) -> None:
        self.stored_by_key: dict[NaturalKey, list[StoredEvent]] = defaultdict(list)
        self.origin: dict[tuple[str, int], str] = {}  # (stream, seq) → adapter event id
        for event in observed.events:
            self.stored_by_key[event_key(event.body)].append(event)
            self.origin[(event.stream, event.seq)] = event.event_id
        for seq, original in observed.validated.items():
            self.origin[(VALIDATED, seq)] = original
        self.journals: dict[str, set[str]] = defaultdict(set)  # adapter event → journal ids
        self.request_ids: dict[str, set[str]] = defaultdict(set)  # adapter event → request ids
        for request in observed.requests:
            for source in request.source_event_ids:
                self.journals[source].add(request.journal_id)
                self.request_ids[source].add(request.event_id)
                self.origin[(ERP, request.seq)] = source
        self.posted: dict[str, list[Posted]] = defaultdict(list)
        for entry in observed.posted:
            self.posted[entry.journal_id].append(entry)
        self.records: dict[str, list[KeptRecord]] = defaultdict(list)  # adapter event → kept
        for record in observed.records:
            for source in self._sources(record):
                self.records[source].append(record)

    def _sources(self, record: KeptRecord) -> set[str]:
        found = set()
        if record.stream is not None and record.stream_seq is not None:
            origin = self.origin.get((record.stream, record.stream_seq))
            if origin is not None:
                found.add(origin)
        if record.event_id is not None:
            found.add(record.event_id)
        return found

    def entries(self, event_ids: Iterable[str]) -> list[Posted]:
        journals = {j for e in event_ids for j in self.journals.get(e, ())}
        return [entry for j in sorted(journals) for entry in self.posted.get(j, ())]

    def kept(self, event_ids: Iterable[str]) -> list[KeptRecord]:
        ids = set(event_ids)
        ids |= {r for e in ids for r in self.request_ids.get(e, ())}
        seen: dict[int, KeptRecord] = {}
        for event_id in ids:
            for record in self.records.get(event_id, ()):
                seen[record.id] = record
        return list(seen.values())


def _lines(lines: Iterable[Any]) -> tuple[LineKey, ...]:
    return tuple(sorted((x.account, x.side, x.amount_minor, x.currency) for x in lines))


def classify(
    scenario: Scenario,
    expected: Expectation,
    observed: Observed,
    *,
    extra_dead_letters: Sequence[str] = (),
) -> Verdict:
    """Every event of ``scenario`` (and every input it must refuse) classified against what
    ``observed`` holds. ``extra_dead_letters``: ids of events a fault published straight into
    a stream (poison) that must end dead-lettered."""
    verdict = Verdict()
    lineage = _Lineage(observed)
    explained_events: set[str] = set()
    explained_journals: set[str] = set()
    keys = fact_keys(scenario)
    for natural, fact_key in keys.items():
        expectation = expected.events[fact_key]
        stored = lineage.stored_by_key.get(natural, [])
        ids = [s.event_id for s in stored]
        explained_events.update(ids)
        entries = lineage.entries(ids)
        explained_journals.update(e.journal_id for e in entries)
        kept = lineage.kept(ids)
        what = f"{fact_key} ({type(expectation.fact).__name__} at {expectation.site})"
        verdict.items.append(Item(what, *_judge(expectation, stored, entries, kept)))
    for event_id in extra_dead_letters:
        explained_events.add(event_id)
        entries = lineage.entries([event_id])
        explained_journals.update(e.journal_id for e in entries)
        dead = any(r.dead_letter for r in lineage.kept([event_id]))
        if entries:
            verdict.items.append(Item(event_id, UNEXPECTED, "posted; it must be dead-lettered"))
        else:
            verdict.items.append(Item(event_id, DEAD_LETTERED if dead else LOST, ""))
    verdict.items += _refusals(expected, observed)
    for event in observed.events:
        if event.event_id not in explained_events:
            what = f"{event.stream} {event.seq} {event.body.get('event_type')}"
            verdict.items.append(Item(what, UNEXPECTED, "stored, but the scenario never sent it"))
    for journal_id, entries in sorted(lineage.posted.items()):
        if journal_id not in explained_journals:
            why = f"{len(entries)} entry(ies) no event of the scenario explains"
            verdict.items.append(Item(journal_id, UNEXPECTED, why))
    return verdict


def _judge(
    expectation: Any,
    stored: Sequence[StoredEvent],
    entries: Sequence[Posted],
    kept: Sequence[KeptRecord],
) -> tuple[str, str]:
    dead = [r for r in kept if r.dead_letter]
    if len(stored) > 1:
        return DUPLICATED, f"stored {len(stored)} times in {stored[0].stream}"
    if len(entries) > 1:
        keys = ", ".join(sorted(e.key for e in entries))
        return DUPLICATED, f"posted {len(entries)} times ({keys})"
    if expectation.outcome == JOURNAL:
        if entries:
            want, got = _lines(expectation.lines), entries[0].lines
            site = entries[0].site
            if got != want or (site is not None and site != expectation.site):
                return UNEXPECTED, f"posted at {site} as {got}, expected {want}"
            return OK, ""
        if dead:
            return DEAD_LETTERED, ", ".join(sorted({f"{r.stage}/{r.reason}" for r in dead}))
        if not stored:
            return LOST, "accepted, but not in its stream"
        return LOST, "in its stream, never posted nor kept"
    if entries:
        return UNEXPECTED, f"posted, but it must end {expectation.outcome}"
    if dead:
        return DEAD_LETTERED, ", ".join(sorted({f"{r.stage}/{r.reason}" for r in dead}))
    if not stored:
        return LOST, "accepted, but not in its stream"
    parked = expectation.outcome == PARKED and expectation.reason != QUEUED_BEHIND
    if parked and not any(r.reason == expectation.reason for r in kept):
        return LOST, f"not kept as {expectation.reason}"
    return OK, ""


def _refusals(expected: Expectation, observed: Observed) -> list[Item]:
    kept = {(r.raw_digest, r.reason) for r in observed.records if r.raw_digest}
    return [
        Item(
            f"refused input {r.label}",
            OK if (r.digest, r.reason) in kept else LOST,
            "" if (r.digest, r.reason) in kept else f"not kept as {r.reason}",
        )
        for r in expected.refusals
    ]


# -- reading it -----------------------------------------------------------------------------
_RECORDS = """
SELECT id, stage, category, reason, status, event_id, stream, stream_seq, raw
  FROM carebus_exceptions.exception_record
"""
_LEDGER = """
SELECT e.journal_id, e.idempotency_key, e.site,
       array_agg(ARRAY[l.account, l.side, l.amount_minor::text, l.currency]) AS lines
  FROM carebus_erp_poster.journal_entry e
  JOIN carebus_erp_poster.journal_line l USING (entry_id)
 GROUP BY e.entry_id
"""
_SANDBOX = """
SELECT journal_id, idempotency_key, body::text AS body
  FROM carebus_erp_sandbox.journal WHERE status <> 'rejected'
"""


def entity_of(body: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """The versioned entity an adapter event belongs to (site, kind, id): an appointment or
    a claim (an 835's claim, payment and adjustments); None for the others."""
    kind, site = str(body.get("event_type", "")), body.get("site")
    appointment = body.get("appointment")
    if kind.startswith("scheduling.appointment.") and isinstance(appointment, Mapping):
        return (site, "appointment", appointment.get("appointment_id"))
    if kind.startswith("billing.") and body.get("claim_id") is not None:
        return (site, "claim", body["claim_id"])
    return None


def order_inversions(observed: Observed) -> list[str]:
    """Where a stage put out two events of one entity in another order than its input
    held them (what two replicas handling one entity at once can do): the validator (adapter
    stream → VALIDATED) and the mapper (VALIDATED → the journal requests). Each says the
    hop, the entity's kind and the two positions; no patient data."""
    by_id = {event.event_id: event for event in observed.events}
    validated_at: dict[str, int] = {}
    for seq, original in sorted(observed.validated.items()):
        validated_at.setdefault(original, seq)  # a redelivered copy counts where it first was
    validator = [
        (by_id[original].seq, seq, by_id[original].body)
        for original, seq in validated_at.items()
        if original in by_id
    ]
    mapper = []
    seen: set[str] = set()
    for request in sorted(observed.requests, key=lambda r: r.seq):
        sources = [s for s in request.source_event_ids if s in validated_at and s in by_id]
        if sources and request.journal_id not in seen:
            seen.add(request.journal_id)
            first = min(sources, key=validated_at.__getitem__)
            mapper.append((validated_at[first], request.seq, by_id[first].body))
    found = []
    for hop, pairs in (("validator", validator), ("mapper", mapper)):
        last: dict[tuple[Any, ...], tuple[int, int]] = {}
        for position_in, position_out, body in sorted(pairs, key=lambda p: p[1]):
            entity = entity_of(body)
            if entity is None:
                continue
            before = last.get(entity)
            if before is not None and before[0] > position_in:
                found.append(
                    f"{hop}: a {entity[1]} at {entity[0]}: input {position_in} came out after "
                    f"input {before[0]} (outputs {before[1]}, {position_out})"
                )
            if before is None or position_in > before[0]:
                last[entity] = (position_in, position_out)
    return found


async def observe_all(database_url: str, nats_url: str, erp: Erp = "ledger") -> Observed:
    """Everything :func:`classify` reads: the streams, the ledger (or the ERP sandbox's
    journals) and the exception store."""
    observed = Observed()
    nc = await nats.connect(server_list(nats_url))
    try:
        js = nc.jetstream()
        for stream in (SCHEDULING, BILLING):
            for seq, _, data in await _messages(js, stream):
                body = json.loads(data)
                observed.events.append(StoredEvent(stream, seq, str(body.get("event_id")), body))
        for seq, _, data in await _messages(js, VALIDATED):
            original = json.loads(data).get("original") or {}
            observed.validated[seq] = str(original.get("event_id"))
        for seq, subject, data in await _messages(js, ERP):
            if subject.startswith("erp.journal.requested."):
                body = json.loads(data)
                observed.requests.append(
                    JournalRequest(
                        seq,
                        str(body["event_id"]),
                        str(body["journal_id"]),
                        tuple(body.get("source_event_ids") or ()),
                    )
                )
    finally:
        await nc.close()
    conn = await asyncpg.connect(database_url)
    try:
        observed.records = [_record(row) for row in await conn.fetch(_RECORDS)]
        if erp == "ledger":
            observed.posted = [
                Posted(
                    row["journal_id"],
                    row["idempotency_key"],
                    row["site"],
                    tuple(sorted((a, s, int(m), c) for a, s, m, c in row["lines"])),
                )
                for row in await conn.fetch(_LEDGER)
            ]
        else:
            observed.posted = [_sandbox_journal(row) for row in await conn.fetch(_SANDBOX)]
    finally:
        await conn.close()
    return observed


def _record(row: Any) -> KeptRecord:
    raw = row["raw"]
    return KeptRecord(
        id=int(row["id"]),
        stage=str(row["stage"]),
        category=str(row["category"]),
        reason=str(row["reason"]),
        status=str(row["status"]),
        event_id=row["event_id"],
        stream=row["stream"],
        stream_seq=row["stream_seq"],
        raw_digest=hashlib.sha256(raw).hexdigest() if raw is not None else None,
    )


def _sandbox_journal(row: Any) -> Posted:
    body = json.loads(row["body"])
    lines = tuple(
        sorted(
            (x["account"], x["side"], int(x["amount_minor"]), x["currency"])
            for x in body.get("lines", ())
        )
    )
    return Posted(row["journal_id"], row["idempotency_key"], None, lines)


async def _messages(js: JetStreamContext, stream: str) -> list[tuple[int, str, bytes]]:
    """(sequence, subject, data) of every message ``stream`` holds, in order."""
    try:
        state = (await js.stream_info(stream)).state
    except NotFoundError:
        return []
    found: list[tuple[int, str, bytes]] = []
    seqs = list(range(state.first_seq, state.last_seq + 1)) if state.messages else []
    for start in range(0, len(seqs), 200):
        chunk = seqs[start : start + 200]
        got = await asyncio.gather(*(js.get_msg(stream, s) for s in chunk), return_exceptions=True)
        for seq, msg in zip(chunk, got, strict=True):
            if isinstance(msg, NotFoundError):
                continue  # a gap (deleted message)
            if isinstance(msg, BaseException):
                raise msg
            found.append((seq, msg.subject or "", msg.data or b""))
    return found
