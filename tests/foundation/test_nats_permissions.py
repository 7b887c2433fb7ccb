"""The generated NATS users on a real nats-server: a service publishes and pulls through its
own subjects and durables, and nothing else (docs/decisions/024)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from carebus_contracts import subjects as s
from carebus_shared.jetstream.permissions import SERVICES, all_permissions, unread_durables
from carebus_shared.jetstream.provision import consumer_config, provision
from carebus_shared.jetstream.server_config import redacted, with_credentials
from carebus_shared.jetstream.topology import MAPPER, TOPOLOGY, partition_durable
from tests.support.nats_auth import SecuredNats, secured_nats

MAPPER_P0 = partition_durable(MAPPER, 0)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[SecuredNats]:
    with secured_nats(tmp_path / "nats") as server:
        yield server


@asynccontextmanager
async def connected(url: str, errors: list[str]) -> AsyncIterator[Client]:
    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(url, error_cb=on_error, connect_timeout=2, max_reconnect_attempts=0)
    try:
        yield nc
    finally:
        await nc.close()


async def _provisioned(secured: SecuredNats) -> None:
    async with connected(secured.admin_url, []) as admin:
        await provision(admin.jetstream(), TOPOLOGY, 1)


def test_every_durable_of_the_topology_is_read_by_some_service() -> None:
    assert unread_durables() == set()
    assert {p.user for p in all_permissions()} >= set(SERVICES)


async def test_the_scheduling_adapter_publishes_only_scheduling_and_exception_events(
    secured: SecuredNats,
) -> None:
    await _provisioned(secured)
    errors: list[str] = []
    async with connected(secured.url_for("scheduling-adapter"), errors) as nc:
        js = nc.jetstream(timeout=1.0)
        ack = await js.publish(s.subject("scheduling", "appointment", "booked", 1, "X", 0), b"{}")
        assert ack.stream == s.STREAM_SCHEDULING
        foreign = s.subject(s.DOMAIN_ERP, "journal", "requested", 1, "X", 0)
        with pytest.raises(nats.errors.TimeoutError):
            await js.publish(foreign, b"{}")
        with pytest.raises(nats.errors.TimeoutError):
            await js.delete_stream(s.STREAM_SCHEDULING)
        # Another stage's durable is out of reach too.
        with pytest.raises(nats.errors.TimeoutError):
            await js.consumer_info(s.STREAM_VALIDATED, MAPPER_P0)
    # nats-py lower-cases the server's error text.
    assert any(f'publish to "{foreign.lower()}"' in e for e in errors), errors
    assert any('publish to "$js.api.stream.delete.scheduling"' in e for e in errors), errors
    assert len(secured.violations()) >= 3
    async with connected(secured.admin_url, []) as admin:
        js = admin.jetstream()
        assert (await js.stream_info(s.STREAM_SCHEDULING)).state.messages == 1
        assert (await js.stream_info(s.STREAM_ERP)).state.messages == 0


async def test_a_service_cannot_subscribe_to_the_pipeline_subjects_directly(
    secured: SecuredNats,
) -> None:
    errors: list[str] = []
    async with connected(secured.url_for("mapper"), errors) as nc:
        await nc.subscribe("validated.>")
        await nc.flush(timeout=2)
        for _ in range(20):  # the server answers the SUB with an -ERR shortly after
            if errors:
                break
            await asyncio.sleep(0.05)
    assert any('subscription to "validated.>"' in e.lower() for e in errors), errors


async def test_a_wrong_password_or_no_user_is_refused(secured: SecuredNats) -> None:
    with pytest.raises(nats.errors.Error):
        await nats.connect(
            with_credentials(secured.server.url, "mapper", "not-the-password"),
            connect_timeout=2,
            max_reconnect_attempts=0,
            allow_reconnect=False,
        )
    with pytest.raises(nats.errors.Error):
        await nats.connect(
            secured.server.url, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False
        )


async def test_the_ops_console_rebuilds_its_own_durables_but_no_stage_s(
    secured: SecuredNats,
) -> None:
    await _provisioned(secured)
    tracker = next(c for c in TOPOLOGY.consumers if c.durable.startswith("ops-tracker-"))
    async with connected(secured.url_for("ops-console"), []) as nc:
        js = nc.jetstream(timeout=1.0)
        assert await js.delete_consumer(tracker.stream, tracker.durable)
        with pytest.raises(NotFoundError):
            await js.consumer_info(tracker.stream, tracker.durable)
        await js.add_consumer(tracker.stream, consumer_config(tracker))
        assert (await js.consumer_info(tracker.stream, tracker.durable)).num_pending == 0
        # It reads every stage's state, but cannot delete one.
        assert (await js.consumer_info(s.STREAM_VALIDATED, MAPPER_P0)).name == MAPPER_P0
        with pytest.raises(nats.errors.TimeoutError):
            await js.delete_consumer(s.STREAM_VALIDATED, MAPPER_P0)


def test_printed_urls_hide_the_password() -> None:
    url = with_credentials("nats://127.0.0.1:1,nats://127.0.0.1:2", "mapper", "s3cret")
    assert url == "nats://mapper:s3cret@127.0.0.1:1,nats://mapper:s3cret@127.0.0.1:2"
    assert "s3cret" not in redacted(url)
    assert redacted(url).startswith("nats://mapper:***@127.0.0.1:1")
