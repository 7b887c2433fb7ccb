"""NATS over TLS with a CA made in the test: a service's settings (NATS_TLS_*) connect with
mutual TLS to a server running `carebus nats-config`'s tls block and users; without a client
certificate, or trusting another CA, nothing connects (docs/decisions/024)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.errors
import pytest
from prometheus_client import CollectorRegistry

from carebus_contracts import subjects as s
from carebus_shared.config import NatsTlsSettings, RuntimeSettings
from carebus_shared.jetstream.connection import ConnectionState, connect, make_broker, tls_context
from carebus_shared.jetstream.provision import provision
from carebus_shared.jetstream.server_config import ServerTls, render_tls
from carebus_shared.jetstream.topology import TOPOLOGY
from carebus_shared.settings import load_settings
from tests.support.certificates import Pem, TestCa
from tests.support.nats_auth import SecuredNats, secured_nats


@pytest.fixture
def ca(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path / "pki")


@pytest.fixture
def tls_nats(tmp_path: Path, ca: TestCa) -> Iterator[SecuredNats]:
    server = ca.issue("server", "nats", server=True)
    block = render_tls(ServerTls(str(server.cert), str(server.key), str(ca.pem.cert), True))
    with secured_nats(tmp_path / "nats", extra_config=block, scheme="tls") as secured:
        yield secured


def _settings(ca: Pem, client: Pem | None) -> RuntimeSettings:
    env = {"NATS_TLS_CA": str(ca.cert)}
    if client:
        env |= {"NATS_TLS_CERT": str(client.cert), "NATS_TLS_KEY": str(client.key)}
    return load_settings(RuntimeSettings, "CAREBUS_X_", env)


async def test_a_service_connects_with_mutual_tls_and_publishes(
    tls_nats: SecuredNats, ca: TestCa
) -> None:
    context = tls_context(_settings(ca.pem, ca.issue("mapper", "mapper", server=False)))
    assert context is not None
    nc = await nats.connect(
        tls_nats.url_for("carebus-admin"), tls=context, connect_timeout=3, allow_reconnect=False
    )
    try:
        await provision(nc.jetstream(), TOPOLOGY, 1)
        ack = await nc.jetstream().publish(
            s.subject("erp", "journal", "requested", 1, "X", 0), b"{}"
        )
        assert ack.stream == s.STREAM_ERP
        assert nc.connected_url is not None
        assert nc.connected_url.scheme == "tls"
    finally:
        await nc.close()


async def test_the_command_line_tools_take_tls_from_the_environment(
    tls_nats: SecuredNats, ca: TestCa, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = ca.issue("admin", "carebus-admin", server=False)
    monkeypatch.setenv("NATS_TLS_CA", str(ca.pem.cert))
    monkeypatch.setenv("NATS_TLS_CERT", str(client.cert))
    monkeypatch.setenv("NATS_TLS_KEY", str(client.key))
    nc = await connect(tls_nats.admin_url, connect_timeout=3, allow_reconnect=False)
    try:
        assert (await nc.jetstream().account_info()).streams >= 0
    finally:
        await nc.close()


async def test_no_client_certificate_or_an_unknown_ca_is_refused(
    tls_nats: SecuredNats, ca: TestCa, tmp_path: Path
) -> None:
    without_cert = tls_context(_settings(ca.pem, None))
    stranger = TestCa(tmp_path / "other", "another CA")
    other_ca = tls_context(_settings(stranger.pem, stranger.issue("x", "x", server=False)))
    for context in (without_cert, other_ca):
        with pytest.raises((nats.errors.Error, ssl.SSLError, OSError)):
            await nats.connect(
                tls_nats.admin_url,
                tls=context,
                connect_timeout=2,
                allow_reconnect=False,
                max_reconnect_attempts=0,
            )


def test_tls_is_off_without_a_ca_and_a_lone_certificate_is_an_error() -> None:
    assert tls_context(NatsTlsSettings()) is None
    with pytest.raises(ValueError, match="NATS_TLS_CA"):
        tls_context(NatsTlsSettings(nats_tls_cert="c.pem", nats_tls_key="k.pem"))


async def test_a_service_broker_built_from_its_settings_connects_over_mutual_tls(
    tls_nats: SecuredNats, ca: TestCa
) -> None:
    settings = _settings(ca.pem, ca.issue("poster", "erp-poster", server=False))
    broker = make_broker(
        tls_nats.url_for("erp-poster"),
        "erp-poster",
        ConnectionState(),
        CollectorRegistry(),
        1.0,
        tls=tls_context(settings),
    )
    connection = await broker.connect()
    try:
        assert connection.connected_url is not None
        assert connection.connected_url.scheme == "tls"
        assert (await connection.jetstream().account_info()).streams >= 0
    finally:
        await broker.stop()
