"""The suite's JetStream topology, declared once: streams, durable pull consumers, KV buckets.

`carebus provision` applies it (create or update, reporting drift); services only bind to
what it made (FastStream ``declare=False``), so replicas never race to create or reconfigure.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from carebus_contracts import subjects as s

MINUTE = 60.0
HOUR = 60 * MINUTE
DAY = 24 * HOUR

# Advisories JetStream emits when a message is given up on; captured durably so that nothing
# that exhausted its deliveries or was terminated disappears without an exception record.
ADVISORY_MAX_DELIVERIES = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"
ADVISORY_TERMINATED = "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.>"
STREAM_ADVISORIES = "ADVISORIES"


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    description: str
    max_age_s: float
    # Publishes with a Nats-Msg-Id seen within this window are dropped as duplicates.
    duplicate_window_s: float = 2 * HOUR


@dataclass(frozen=True)
class ConsumerSpec:
    stream: str
    durable: str
    filter_subjects: tuple[str, ...]
    description: str
    # Redelivery schedule for messages neither acked nor nacked (a crashed or hung consumer).
    # The first step is the ack deadline, so it must exceed the slowest batch.
    backoff_s: tuple[float, ...] = (30.0, 60.0, 120.0, 300.0)
    max_deliver: int = 10
    max_ack_pending: int = 10_000
    # Whether the stage's results depend on the order of events per entity: such a stage
    # never handles a message before an older one still out with an instance that died.
    ordered: bool = False
    # False for an observer off the pipeline's path (the ops console's tracker): nothing in
    # the pipeline waits for it, and "the pipeline is drained" does not count its backlog.
    pipeline: bool = True
    # A partitioned stage is one durable per subject partition (docs/decisions/030): ``group``
    # names the stage as a whole (the durable before partitions), ``partition`` this one.
    group: str = ""
    partition: int | None = None

    @property
    def stage(self) -> str:
        """The stage this durable belongs to: its group, or itself when not partitioned."""
        return self.group or self.durable


@dataclass(frozen=True)
class KeyValueSpec:
    bucket: str
    description: str
    history: int = 1
    ttl_s: float | None = None  # entries expire this long after their last write


@dataclass(frozen=True)
class Topology:
    streams: tuple[StreamSpec, ...]
    consumers: tuple[ConsumerSpec, ...]
    key_values: tuple[KeyValueSpec, ...] = field(default=())

    def stream(self, name: str) -> StreamSpec:
        return next(spec for spec in self.streams if spec.name == name)

    def consumer(self, durable: str) -> ConsumerSpec:
        return next(spec for spec in self.consumers if spec.durable == durable)

    def stage(self, name: str) -> tuple[ConsumerSpec, ...]:
        """The durables of a stage: its partitions, or the one durable of that name."""
        found = tuple(spec for spec in self.consumers if spec.stage == name)
        if not found:
            raise KeyError(f"no consumer or stage named {name!r}")
        return found

    @property
    def stages(self) -> tuple[str, ...]:
        """Every stage's name, in the topology's order."""
        return tuple(dict.fromkeys(spec.stage for spec in self.consumers))

    def key_value(self, bucket: str) -> KeyValueSpec:
        return next(spec for spec in self.key_values if spec.bucket == bucket)

    @property
    def pipeline_consumers(self) -> tuple[ConsumerSpec, ...]:
        """The consumers the pipeline's own stages read (observers left out)."""
        return tuple(spec for spec in self.consumers if spec.pipeline)


# Stages whose results depend on the order of events per entity (quarantine queues, version
# fencing) allow only one batch in flight per partition, and are ``ordered``. After a crash the dead
# instance's batch stays pending until its ack deadline. When that batch was not full,
# JetStream hands the successor up to the rest of the allowance of newer events first; an
# ordered stage holds those until the dead one's batch is redelivered to it and handles all
# of them in stream order (consumer.py; the fault suite found a booking handled after its
# check-in, stale, its journal never posted: docs/decisions/017). Such a stage is one durable
# per subject partition; one replica at a time holds a partition's lease and fetches from it
# (lease.py, docs/decisions/027), and replicas share the partitions (balancer.py,
# docs/decisions/030).
# 100, the stages' default batch, rather than 200: a remittance file's burst moves down the
# pipeline in halves and the stages overlap on it (pipeline benchmark: docs/decisions/003).
ORDERED_IN_FLIGHT = 100

# Replicas of an ordered stage take turns on its durable: the one holding its lease in this
# bucket fetches, the others stand by (lease.py; docs/decisions/027). A dead holder's lease
# expires after LEASE_TTL_S; a stopping one releases it at once.
STAGE_LEASES_BUCKET = "stage_leases"
LEASE_TTL_S = 5.0

# Durable consumer names, one per consuming stage (an ordered stage's partitions are
# ``<name>-p<n>``); replicas of a service share them.
VALIDATOR_SCHEDULING = "masterdata-validator-scheduling"
VALIDATOR_BILLING = "masterdata-validator-billing"
MAPPER = "mapper"
ERP_POSTER = "erp-poster"
EXCEPTION_CAPTURE = "exception-capture"
# The outbound feeds (services/outbound, docs/decisions/025): one durable per feed.
OUTBOUND_BILLING_READINESS = "outbound-billing-readiness"
OUTBOUND_STATUS_REMITTANCE = "outbound-status-remittance"
OUTBOUND_STATUS_POSTING = "outbound-status-posting"
OUTBOUND_STATUS_WEBHOOK = "outbound-status-webhook"
OUTBOUND_MASTERDATA = "outbound-masterdata"
# A receiver that is down is retried with backoff (up to its retry_max_s between tries) for
# this many deliveries before the message becomes a dead letter: hours, not minutes.
OUTBOUND_MAX_DELIVER = 50
MASTERDATA_VIEW_BUCKET = "masterdata_view"

# The ops console's sync tracker reads these streams through durables of its own
# (docs/decisions/018): never a stage's consumer, so the pipeline never waits for it.
OPS_TRACKED_STREAMS = (
    s.STREAM_SCHEDULING,
    s.STREAM_BILLING,
    s.STREAM_MASTERDATA,
    s.STREAM_VALIDATED,
    s.STREAM_ERP,
    s.STREAM_EXCEPTIONS,
)


def ops_tracker(stream: str) -> str:
    """The tracker's durable on ``stream``, e.g. ``ops-tracker-scheduling``."""
    return f"ops-tracker-{stream.lower()}"


def _ops_tracker_spec(stream: str) -> ConsumerSpec:
    return ConsumerSpec(
        stream,
        ops_tracker(stream),
        (s.STREAM_SUBJECTS[stream],),
        "The ops console's sync tracker (off the pipeline's path)",
        # Idempotent and order-free (a step per event id), so a wide window is safe.
        max_ack_pending=20_000,
        pipeline=False,
    )


def partition_durable(stage: str, partition: int) -> str:
    """An ordered stage's durable for one partition, e.g. ``mapper-p3``."""
    return f"{stage}-{s.partition_token(partition)}"


def partitioned(spec: ConsumerSpec, partitions: int = s.PARTITIONS) -> tuple[ConsumerSpec, ...]:
    """``spec`` as one durable per subject partition of its stream's domain. Partition 0 also
    reads the subjects stored before partitions (five tokens), so none is left unread."""
    domain = s.STREAM_SUBJECTS[spec.stream].removesuffix(".>")
    return tuple(
        replace(
            spec,
            durable=partition_durable(spec.durable, p),
            filter_subjects=(
                s.partition_filter(domain, p),
                *((s.legacy_filter(domain),) if p == 0 else ()),
            ),
            description=f"{spec.description} (partition {p} of {partitions})",
            group=spec.durable,
            partition=p,
        )
        for p in range(partitions)
    )


def _ordered_stage(stream: str, durable: str, description: str) -> tuple[ConsumerSpec, ...]:
    """An ordered stage reading all of ``stream``: a durable per partition, one batch each."""
    return partitioned(
        ConsumerSpec(
            stream,
            durable,
            (s.STREAM_SUBJECTS[stream],),
            description,
            max_ack_pending=ORDERED_IN_FLIGHT,
            ordered=True,
        )
    )


TOPOLOGY = Topology(
    streams=(
        StreamSpec(
            s.STREAM_SCHEDULING,
            (s.STREAM_SUBJECTS[s.STREAM_SCHEDULING],),
            "Canonical appointment events from the scheduling adapter",
            max_age_s=90 * DAY,
            # Senders retransmit HL7 and re-export files for a day or more.
            duplicate_window_s=DAY,
        ),
        StreamSpec(
            s.STREAM_BILLING,
            (s.STREAM_SUBJECTS[s.STREAM_BILLING],),
            "Canonical charge, payment, adjustment and claim events from the billing adapter",
            max_age_s=90 * DAY,
            duplicate_window_s=DAY,
        ),
        StreamSpec(
            s.STREAM_MASTERDATA,
            (s.STREAM_SUBJECTS[s.STREAM_MASTERDATA],),
            "Master-data change events",
            max_age_s=365 * DAY,
        ),
        StreamSpec(
            s.STREAM_VALIDATED,
            (s.STREAM_SUBJECTS[s.STREAM_VALIDATED],),
            "Events whose references resolved, enriched with canonical ids and dimensions",
            max_age_s=90 * DAY,
        ),
        StreamSpec(
            s.STREAM_ERP,
            (s.STREAM_SUBJECTS[s.STREAM_ERP],),
            "Journal entries requested, posted, confirmed and rejected",
            max_age_s=365 * DAY,
        ),
        StreamSpec(
            s.STREAM_EXCEPTIONS,
            (s.STREAM_SUBJECTS[s.STREAM_EXCEPTIONS],),
            "Business and technical exceptions, with references to the original messages",
            max_age_s=365 * DAY,
        ),
        StreamSpec(
            s.STREAM_STATUS,
            (s.STREAM_SUBJECTS[s.STREAM_STATUS],),
            "What became of remittances and journals, told back to the systems that sent them",
            max_age_s=90 * DAY,
        ),
        StreamSpec(
            STREAM_ADVISORIES,
            (ADVISORY_MAX_DELIVERIES, ADVISORY_TERMINATED),
            "JetStream advisories for messages given up on",
            max_age_s=30 * DAY,
        ),
    ),
    consumers=(
        *_ordered_stage(
            s.STREAM_SCHEDULING,
            VALIDATOR_SCHEDULING,
            "Master-data validation of appointment events",
        ),
        *_ordered_stage(
            s.STREAM_BILLING, VALIDATOR_BILLING, "Master-data validation of billing events"
        ),
        *_ordered_stage(
            s.STREAM_VALIDATED, MAPPER, "Mapping of validated events to journal entries"
        ),
        ConsumerSpec(
            s.STREAM_ERP,
            ERP_POSTER,
            (s.filter_for(s.DOMAIN_ERP, "journal", "requested"),),
            "Posting of requested journal entries to the ERP",
        ),
        ConsumerSpec(
            STREAM_ADVISORIES,
            EXCEPTION_CAPTURE,
            (ADVISORY_MAX_DELIVERIES, ADVISORY_TERMINATED),
            "Records given-up messages in the exception store",
        ),
        *(_ops_tracker_spec(stream) for stream in OPS_TRACKED_STREAMS),
        ConsumerSpec(
            s.STREAM_VALIDATED,
            OUTBOUND_BILLING_READINESS,
            (s.filter_for(s.DOMAIN_VALIDATED, "appointment", "completed", 1),),
            "Completed visits sent to the billing system as charge capture triggers",
            max_deliver=OUTBOUND_MAX_DELIVER,
            # Each message waits on an external receiver, one at a time per batch.
            max_ack_pending=1_000,
            # Off the pipeline's path: nothing downstream waits for a feed, and a billing
            # system that is down must not keep "the pipeline is drained" from being true.
            pipeline=False,
        ),
        # Status back: remittance outcomes and ERP answers become STATUS events (no receiver
        # involved, so the stage's defaults), which the webhook feed delivers.
        ConsumerSpec(
            s.STREAM_VALIDATED,
            OUTBOUND_STATUS_REMITTANCE,
            tuple(
                s.filter_for(s.DOMAIN_VALIDATED, entity, event)
                for entity, event in (
                    ("payment", "posted"),
                    ("adjustment", "posted"),
                    ("claim", "adjudicated"),
                )
            ),
            "Payment, denial and adjustment outcomes as status events",
            pipeline=False,
        ),
        ConsumerSpec(
            s.STREAM_ERP,
            OUTBOUND_STATUS_POSTING,
            (
                s.filter_for(s.DOMAIN_ERP, "journal", "confirmed"),
                s.filter_for(s.DOMAIN_ERP, "journal", "rejected"),
            ),
            "ERP posting confirmations and rejections as status events",
            pipeline=False,
        ),
        ConsumerSpec(
            s.STREAM_STATUS,
            OUTBOUND_STATUS_WEBHOOK,
            (s.STREAM_SUBJECTS[s.STREAM_STATUS],),
            "Status events posted to the configured webhook",
            max_deliver=OUTBOUND_MAX_DELIVER,
            max_ack_pending=1_000,
            pipeline=False,
        ),
        ConsumerSpec(
            s.STREAM_MASTERDATA,
            OUTBOUND_MASTERDATA,
            tuple(
                s.filter_for(s.DOMAIN_MASTERDATA, entity, "changed")
                for entity in ("provider", "location", "service")
            ),
            "Provider, location and service changes sent to subscribed scheduling systems",
            max_deliver=OUTBOUND_MAX_DELIVER,
            # One change out at a time: a retried change is never overtaken by a newer one
            # of the same provider (master data is little, its order is not).
            max_ack_pending=1,
            pipeline=False,
        ),
    ),
    key_values=(
        KeyValueSpec(MASTERDATA_VIEW_BUCKET, "Current master data, read by the validator's view"),
        KeyValueSpec(
            STAGE_LEASES_BUCKET,
            "Which replica of an ordered stage fetches from its durable",
            ttl_s=LEASE_TTL_S,
        ),
    ),
)


def partitions_of(name: str, topology: Topology = TOPOLOGY) -> tuple[str, ...]:
    """The durables of the stage ``name`` names, or of the stage the durable ``name`` belongs
    to: ``mapper`` → ``mapper-p0`` … ``mapper-p5``; ``erp-poster`` → itself."""
    return tuple(spec.durable for spec in topology.stage(stage_of_durable(name, topology)))


def as_whole(stage: str, topology: Topology = TOPOLOGY) -> ConsumerSpec:
    """One spec standing for the stage ``stage`` as a whole: its one durable, or, for a
    partitioned stage, its name reading the whole stream (the durable it had before)."""
    specs = topology.stage(stage)
    first = specs[0]
    if len(specs) == 1:
        return first
    return replace(
        first,
        durable=stage,
        filter_subjects=topology.stream(first.stream).subjects,
        description=first.description.split(" (partition")[0],
        group="",
        partition=None,
    )


def stage_of_durable(durable: str, topology: Topology = TOPOLOGY) -> str:
    """The stage a durable belongs to (``mapper-p3`` → ``mapper``); an unknown name as is."""
    return next((c.stage for c in topology.consumers if c.durable == durable), durable)
