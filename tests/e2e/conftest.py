"""The end-to-end stack: all five services as separate processes, on a NATS server and a
database of the test's own (what the suite holds is exactly what the test put there). The
ERP poster's and the mapper's ack deadlines are shortened to 5 s (production: 30 s) so that
the messages a killed one held come back quickly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from carebus_scenario.stack import ServiceStack, with_ack_wait
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.jetstream.permissions import SERVICES
from carebus_shared.jetstream.topology import ERP_POSTER, MAPPER, TOPOLOGY
from tests.support.nats_auth import SecuredNats, secured_nats
from tests.support.stacks import running_stack

SHORT_BACKOFF_S = (5.0, 10.0, 20.0, 60.0)


@dataclass(frozen=True)
class SecuredStack:
    services: ServiceStack
    nats: SecuredNats


@pytest.fixture
async def stack(
    database_url: str, private_nats: NatsServer, tmp_path: Path
) -> AsyncIterator[ServiceStack]:
    topology = with_ack_wait(TOPOLOGY, ERP_POSTER, SHORT_BACKOFF_S)
    async with running_stack(
        database_url,
        private_nats.url,
        tmp_path,
        topology=with_ack_wait(topology, MAPPER, SHORT_BACKOFF_S),
        extra_env={"erp-poster": {"CAREBUS_ERP_POSTER_ACK_KEEPALIVE_S": "1"}},
    ) as services:
        yield services


@pytest.fixture
async def secured_stack(database_url: str, tmp_path: Path) -> AsyncIterator[SecuredStack]:
    """The stack on a NATS server running the generated users (docs/decisions/024) and with
    the database roles (docs/decisions/026): it is provisioned as the administrator, and each
    service connects as its own NATS user and logs in as its own database role."""
    with secured_nats(tmp_path / "nats") as secured:
        per_service = {name: {"NATS_URL": secured.url_for(name)} for name in SERVICES}
        per_service["erp-poster"]["CAREBUS_ERP_POSTER_ACK_KEEPALIVE_S"] = "1"
        async with running_stack(
            database_url,
            secured.admin_url,
            tmp_path / "stack",
            topology=with_ack_wait(TOPOLOGY, ERP_POSTER, SHORT_BACKOFF_S),
            extra_env=per_service,
            database_roles=True,
        ) as services:
            yield SecuredStack(services, secured)
