"""Each service's NATS permissions, derived from the subject catalogue and the topology.

A service may publish only to the domains it produces, pull and acknowledge only through the
durables it reads, and touch only the buckets it owns; `carebus nats-config` renders these
as a nats-server ``authorization`` block (``server_config.py``). The administrator user
(provision, replay, reconcile, status) holds everything. docs/decisions/024.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from carebus_contracts import subjects as s
from carebus_shared.jetstream.topology import (
    ERP_POSTER,
    EXCEPTION_CAPTURE,
    MAPPER,
    MASTERDATA_VIEW_BUCKET,
    OPS_TRACKED_STREAMS,
    OUTBOUND_BILLING_READINESS,
    OUTBOUND_MASTERDATA,
    OUTBOUND_STATUS_POSTING,
    OUTBOUND_STATUS_REMITTANCE,
    OUTBOUND_STATUS_WEBHOOK,
    STAGE_LEASES_BUCKET,
    TOPOLOGY,
    VALIDATOR_BILLING,
    VALIDATOR_SCHEDULING,
    ConsumerSpec,
    Topology,
    ops_tracker,
)

ADMIN_USER = "carebus-admin"
# Replies (publish confirmations, pull responses, API answers) come back on inboxes.
INBOXES = "_INBOX.>"
PIPELINE_DOMAINS = (
    s.DOMAIN_SCHEDULING,
    s.DOMAIN_BILLING,
    s.DOMAIN_MASTERDATA,
    s.DOMAIN_VALIDATED,
    s.DOMAIN_ERP,
)
PIPELINE_STREAMS = tuple(
    name for name in s.STREAM_SUBJECTS if s.STREAM_SUBJECTS[name] != f"{s.DOMAIN_EXCEPTIONS}.>"
)


@dataclass(frozen=True)
class ServiceAccess:
    """What a service does on NATS, in the catalogue's and the topology's terms."""

    publishes: tuple[str, ...]  # domains whose subjects it publishes
    # Durables it pulls from and acknowledges through (a partitioned stage's name: them all).
    durables: tuple[str, ...] = ()
    # Durables it may delete and create again itself (the ops console's rebuild).
    owned_durables: tuple[str, ...] = ()
    kv_writes: tuple[str, ...] = ()
    kv_watches: tuple[str, ...] = ()
    # Streams whose messages it reads by sequence (an advisory's original, a journal).
    reads_streams: tuple[str, ...] = ()
    # Reads every consumer's and stream's state (the console's pipeline view).
    observes_all: bool = False


# Every stage records exceptions and takes its share of the given-up-message advisories,
# whose originals can lie on any pipeline stream.
_STAGE = ServiceAccess(
    publishes=(s.DOMAIN_EXCEPTIONS,), durables=(EXCEPTION_CAPTURE,), reads_streams=PIPELINE_STREAMS
)


def _stage(
    *publishes: str,
    durables: tuple[str, ...] = (),
    kv_writes: tuple[str, ...] = (),
    kv_watches: tuple[str, ...] = (),
) -> ServiceAccess:
    return ServiceAccess(
        publishes=(*publishes, *_STAGE.publishes),
        durables=(*durables, *_STAGE.durables),
        kv_writes=kv_writes,
        kv_watches=kv_watches,
        reads_streams=_STAGE.reads_streams,
    )


_TRACKERS = tuple(ops_tracker(stream) for stream in OPS_TRACKED_STREAMS)

SERVICES: dict[str, ServiceAccess] = {
    "scheduling-adapter": _stage(s.DOMAIN_SCHEDULING),
    "billing-adapter": _stage(s.DOMAIN_BILLING),
    "masterdata-validator": _stage(
        s.DOMAIN_VALIDATED,
        s.DOMAIN_MASTERDATA,
        durables=(VALIDATOR_SCHEDULING, VALIDATOR_BILLING),
        kv_writes=(MASTERDATA_VIEW_BUCKET, STAGE_LEASES_BUCKET),
        kv_watches=(MASTERDATA_VIEW_BUCKET, STAGE_LEASES_BUCKET),
    ),
    # Ordered stages read and write their durables' leases (lease.py).
    "mapper": _stage(
        s.DOMAIN_ERP,
        durables=(MAPPER,),
        kv_writes=(STAGE_LEASES_BUCKET,),
        kv_watches=(STAGE_LEASES_BUCKET,),
    ),
    "erp-poster": _stage(s.DOMAIN_ERP, durables=(ERP_POSTER,)),
    # The outbound feeds publish status events and deliver to outside systems (ADR 025).
    "outbound": _stage(
        s.DOMAIN_STATUS,
        durables=(
            OUTBOUND_BILLING_READINESS,
            OUTBOUND_STATUS_REMITTANCE,
            OUTBOUND_STATUS_POSTING,
            OUTBOUND_STATUS_WEBHOOK,
            OUTBOUND_MASTERDATA,
        ),
    ),
    # The console re-drives stream messages to the subject they first had, on any domain.
    "ops-console": ServiceAccess(
        publishes=(*PIPELINE_DOMAINS, s.DOMAIN_EXCEPTIONS),
        durables=_TRACKERS,
        owned_durables=_TRACKERS,
        reads_streams=(*PIPELINE_STREAMS, s.STREAM_EXCEPTIONS),
        observes_all=True,
    ),
}


@dataclass(frozen=True)
class Permissions:
    user: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...] = field(default=(INBOXES,))


def _consumer_subjects(spec: ConsumerSpec) -> list[str]:
    return [
        f"$JS.API.CONSUMER.MSG.NEXT.{spec.stream}.{spec.durable}",
        f"$JS.ACK.{spec.stream}.{spec.durable}.>",
        f"$JS.API.CONSUMER.INFO.{spec.stream}.{spec.durable}",
    ]


def _owned_consumer_subjects(spec: ConsumerSpec) -> list[str]:
    stream, durable = spec.stream, spec.durable
    return [
        f"$JS.API.CONSUMER.DELETE.{stream}.{durable}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{durable}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
    ]


def _kv_watch_subjects(bucket: str) -> list[str]:
    stream = f"KV_{bucket}"
    # A watch is an ordered push consumer of the server's making, recreated after gaps;
    # flow-control answers go to $JS.FC.
    return [
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.INFO.{stream}.*",
        f"$JS.API.CONSUMER.DELETE.{stream}.*",
        f"$JS.API.DIRECT.GET.{stream}.>",
        f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.FC.{stream}.>",
    ]


def service_permissions(
    name: str, access: ServiceAccess, topology: Topology = TOPOLOGY
) -> Permissions:
    """The publish allow-list of one service (it subscribes to its inboxes only)."""
    publish: list[str] = ["$JS.API.INFO"]  # the readiness probe's account check
    publish += [f"{domain}.>" for domain in access.publishes]
    for durable in access.durables:  # a stage's name stands for its partitions
        for spec in topology.stage(durable):
            publish += _consumer_subjects(spec)
    for durable in access.owned_durables:
        publish += _owned_consumer_subjects(topology.consumer(durable))
    publish += [f"$KV.{bucket}.>" for bucket in access.kv_writes]
    for bucket in access.kv_watches:
        publish += _kv_watch_subjects(bucket)
    for stream in access.reads_streams:
        publish += [f"$JS.API.STREAM.MSG.GET.{stream}", f"$JS.API.DIRECT.GET.{stream}.>"]
    if access.observes_all:
        publish += ["$JS.API.STREAM.INFO.*", "$JS.API.CONSUMER.INFO.*.*"]
    return Permissions(name, tuple(dict.fromkeys(publish)))


def all_permissions(topology: Topology = TOPOLOGY) -> list[Permissions]:
    """Every service's user, then the administrator's (everything)."""
    known = set(topology.stages)
    for name, access in SERVICES.items():
        unknown = set(access.durables) - known
        if unknown:
            raise ValueError(f"{name} reads durables the topology lacks: {sorted(unknown)}")
    users = [service_permissions(name, access, topology) for name, access in SERVICES.items()]
    return [*users, Permissions(ADMIN_USER, (">",), (">",))]


def unread_durables(topology: Topology = TOPOLOGY) -> set[str]:
    """Durables of the topology that no service may read (a gap in ``SERVICES``)."""
    read = {durable for access in SERVICES.values() for durable in access.durables}
    return {spec.durable for spec in topology.consumers if spec.stage not in read}
