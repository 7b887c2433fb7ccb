"""The MLLP listener's guards over real loopback sockets: TLS and mutual TLS, the peer
allow-list, the connection cap, and the deadline a slow trickle cannot outlast."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from carebus_shared.config import IntakeSettings
from carebus_shared.hl7 import build_ack
from carebus_shared.mllp import MllpLimits, MllpMetrics, MllpServer, frame
from carebus_shared.mllp.listener import mllp_peers
from carebus_shared.mllp.server import MllpPeers, parse_networks, server_tls_context
from carebus_shared.settings import load_settings
from tests.support.certificates import Pem, TestCa

TIMEOUT = 5.0
MESSAGE = b"MSH|^~\\&|SND|FAC|RCV|RF|20240101||SIU^S12|C1|P|2.5.1\rSCH|1"


async def echo_aa(raw: bytes) -> bytes:
    return build_ack(raw, "AA")


def refused(registry: CollectorRegistry, reason: str) -> float:
    value = registry.get_sample_value("carebus_mllp_refused_connections_total", {"reason": reason})
    return value or 0.0


async def exchange(
    port: int, context: ssl.SSLContext | None = None, payload: bytes = MESSAGE
) -> bytes:
    """Send one message, return the ACK (b"" when the server closed instead)."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1" if context else None
        ),
        TIMEOUT,
    )
    try:
        writer.write(frame(payload))
        await writer.drain()
        try:
            return await asyncio.wait_for(reader.readuntil(b"\x1c\r"), TIMEOUT)
        except asyncio.IncompleteReadError as exc:
            return exc.partial
    finally:
        writer.close()
        await asyncio.gather(writer.wait_closed(), return_exceptions=True)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def ca(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path / "pki")


def _client_context(ca: Pem, client: Pem | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.cert))
    if client:
        context.load_cert_chain(str(client.cert), str(client.key))
    return context


async def test_mutual_tls_takes_a_sender_with_a_certificate_of_the_ca_only(
    ca: TestCa, registry: CollectorRegistry, tmp_path: Path
) -> None:
    server_pem = ca.issue("mllp", "mllp", server=True)
    tls = server_tls_context(str(server_pem.cert), str(server_pem.key), str(ca.pem.cert))
    peers = MllpPeers(tls=tls)
    async with MllpServer(echo_aa, port=0, metrics=MllpMetrics(registry), peers=peers) as server:
        sender = ca.issue("sender", "scheduling system", server=False)
        ack = await exchange(server.port, _client_context(ca.pem, sender))
        assert b"MSA|AA|C1" in ack
        # No client certificate, or one from another CA: no ACK, a refusal counted.
        stranger = TestCa(tmp_path / "other", "another CA")
        for context in (
            _client_context(ca.pem, None),
            _client_context(ca.pem, stranger.issue("s", "s", server=False)),
        ):
            # TLS 1.3: the client's handshake ends before the server checks its certificate,
            # so the refusal shows as an alert or a closed stream on the first read.
            try:
                answer = await exchange(server.port, context)
            except (ssl.SSLError, ConnectionError):
                answer = b""
            assert answer == b""
        # A plaintext sender gets nothing either.
        assert await exchange(server.port) == b""
        assert refused(registry, "tls") == 3


async def test_a_peer_outside_the_allow_list_is_refused_before_any_byte_is_read(
    registry: CollectorRegistry,
) -> None:
    handled: list[bytes] = []

    async def handler(raw: bytes) -> bytes:
        handled.append(raw)
        return await echo_aa(raw)

    metrics = MllpMetrics(registry)
    outside = MllpPeers(allowed=parse_networks("10.0.0.0/8, 192.168.1.7"))
    async with MllpServer(handler, port=0, metrics=metrics, peers=outside) as s:
        assert await exchange(s.port) == b""
    assert handled == []
    assert refused(registry, "peer") == 1
    inside = MllpPeers(allowed=parse_networks("127.0.0.0/8"))
    async with MllpServer(handler, port=0, metrics=metrics, peers=inside) as s:
        assert b"MSA|AA" in await exchange(s.port)


async def test_connections_beyond_the_cap_are_refused_and_counted(
    registry: CollectorRegistry,
) -> None:
    limits = MllpLimits(max_connections=2)
    async with MllpServer(echo_aa, port=0, limits=limits, metrics=MllpMetrics(registry)) as s:
        held = [await asyncio.open_connection("127.0.0.1", s.port) for _ in range(2)]
        try:
            for _ in range(50):  # both accepted by the server's loop
                if registry.get_sample_value("carebus_mllp_open_connections") == 2:
                    break
                await asyncio.sleep(0.02)
            assert await exchange(s.port) == b""
            assert refused(registry, "limit") == 1
        finally:
            for _, writer in held:
                writer.close()
        for _ in range(50):
            if registry.get_sample_value("carebus_mllp_open_connections") == 0:
                break
            await asyncio.sleep(0.02)
        assert b"MSA|AA" in await exchange(s.port)  # room again


async def test_a_slow_trickle_is_closed_at_the_message_deadline(
    registry: CollectorRegistry,
) -> None:
    # The idle timeout alone would never fire: a byte arrives every 0.1 s.
    limits = MllpLimits(idle_timeout=1.0, message_deadline=0.6)
    async with MllpServer(echo_aa, port=0, limits=limits, metrics=MllpMetrics(registry)) as s:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        started = time.monotonic()
        closed_after = None
        for byte in frame(MESSAGE)[:-2]:  # never the end block
            if reader.at_eof():
                closed_after = time.monotonic() - started
                break
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                closed_after = time.monotonic() - started
                break
            try:
                if await asyncio.wait_for(reader.read(1), 0.1) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                pass
        writer.close()
    assert closed_after is not None
    assert 0.5 <= closed_after < 2.0
    assert registry.get_sample_value("carebus_mllp_message_deadline_timeouts_total") == 1
    assert registry.get_sample_value("carebus_mllp_idle_timeouts_total") == 0


async def test_a_connection_that_finishes_its_messages_outlives_the_deadline(
    registry: CollectorRegistry,
) -> None:
    limits = MllpLimits(idle_timeout=2.0, message_deadline=0.3)
    async with MllpServer(echo_aa, port=0, limits=limits, metrics=MllpMetrics(registry)) as s:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        try:
            for _ in range(4):  # 4 x 0.2 s: longer than the deadline, each message whole
                writer.write(frame(MESSAGE))
                await writer.drain()
                assert b"MSA|AA" in await asyncio.wait_for(reader.readuntil(b"\x1c\r"), TIMEOUT)
                await asyncio.sleep(0.2)
        finally:
            writer.close()
    assert registry.get_sample_value("carebus_mllp_message_deadline_timeouts_total") == 0


def test_settings_make_the_peers_and_name_a_bad_network(tmp_path: Path) -> None:
    ca = TestCa(tmp_path / "pki")
    pem = ca.issue("mllp", "mllp", server=True)
    env = {
        "CAREBUS_X_MLLP_TLS_CERT": str(pem.cert),
        "CAREBUS_X_MLLP_TLS_KEY": str(pem.key),
        "CAREBUS_X_MLLP_TLS_CLIENT_CA": str(ca.pem.cert),
        "CAREBUS_X_MLLP_ALLOWED_PEERS": "10.2.0.0/16,::1",
    }
    peers = mllp_peers(load_settings(IntakeSettings, "CAREBUS_X_", env))
    assert peers.tls is not None
    assert peers.tls.verify_mode == ssl.CERT_REQUIRED
    assert peers.allows("10.2.9.9")
    assert peers.allows("::ffff:10.2.0.1")
    assert not peers.allows("10.3.0.1")
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300'"):
        parse_networks("10.0.0.300")
    lone_key = {"CAREBUS_X_MLLP_TLS_KEY": str(pem.key)}
    with pytest.raises(ValueError, match="go together"):
        mllp_peers(load_settings(IntakeSettings, "CAREBUS_X_", lone_key))
