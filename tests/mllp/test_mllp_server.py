"""The asyncio MLLP server over loopback: ordering, concurrency, failures, limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from carebus_shared.hl7 import Hl7MappingError, build_ack, parse_message
from carebus_shared.hl7.message import Hl7Message
from carebus_shared.mllp import MllpLimits, MllpMetrics, MllpServer, frame, hl7_handler

TIMEOUT = 5.0


def msg(control_id: str, extra: str = "") -> bytes:
    return f"MSH|^~\\&|SND|FAC|RCV|RF|20240101||SIU^S12|{control_id}|P|2.5.1\rSCH|1{extra}".encode()


async def echo_aa(raw: bytes) -> bytes:
    return build_ack(raw, "AA")


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> Client:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def ack(self, timeout: float = TIMEOUT) -> bytes:
        data = await asyncio.wait_for(self.reader.readuntil(b"\x1c\r"), timeout)
        return data.strip(b"\x0b\x1c\r")

    async def closed_by_server(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), TIMEOUT) == b""

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def msa(ack: bytes) -> list[str]:
    return next(s for s in ack.decode().split("\r") if s.startswith("MSA")).split("|")


def sample_value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels or None) or 0.0


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def server(registry: CollectorRegistry) -> AsyncIterator[MllpServer]:
    async with MllpServer(echo_aa, port=0, metrics=MllpMetrics(registry)) as srv:
        yield srv


async def test_many_messages_per_connection_in_order(
    server: MllpServer, registry: CollectorRegistry
) -> None:
    client = await Client.connect(server.port)
    await client.send(b"".join(frame(msg(f"C{i}")) for i in range(5)))
    assert [msa(await client.ack())[2] for _ in range(5)] == [f"C{i}" for i in range(5)]
    await client.close()
    assert sample_value(registry, "carebus_mllp_messages_total", result="aa") == 5


async def test_split_writes_and_garbage(server: MllpServer, registry: CollectorRegistry) -> None:
    client = await Client.connect(server.port)
    wire = b"noise" + frame(msg("S1"))
    for i in range(0, len(wire), 3):
        await client.send(wire[i : i + 3])
    assert msa(await client.ack())[2] == "S1"
    await client.close()
    assert sample_value(registry, "carebus_mllp_garbage_bytes_total") == 5


async def test_concurrent_connections_are_independent(registry: CollectorRegistry) -> None:
    release = asyncio.Event()

    async def slow_for_c0(raw: bytes) -> bytes:
        if b"|C0|" in raw:
            await release.wait()
        return build_ack(raw, "AA")

    async with MllpServer(slow_for_c0, port=0, metrics=MllpMetrics(registry)) as srv:
        slow, fast = await Client.connect(srv.port), await Client.connect(srv.port)
        await slow.send(frame(msg("C0")))
        await fast.send(frame(msg("C1")))
        assert msa(await fast.ack())[2] == "C1"  # not blocked by the other connection
        release.set()
        assert msa(await slow.ack())[2] == "C0"
        await asyncio.gather(slow.close(), fast.close())


async def test_handler_failure_sends_no_ack_and_keeps_connection(
    registry: CollectorRegistry,
) -> None:
    calls = 0

    async def flaky(raw: bytes) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("JetStream unavailable")
        return build_ack(raw, "AA")

    async with MllpServer(flaky, port=0, metrics=MllpMetrics(registry)) as srv:
        client = await Client.connect(srv.port)
        await client.send(frame(msg("R1")))
        with pytest.raises(TimeoutError):
            await client.ack(timeout=0.3)
        await client.send(frame(msg("R1")))  # the sender's retry
        assert msa(await client.ack())[1:3] == ["AA", "R1"]
        await client.close()
    assert sample_value(registry, "carebus_mllp_messages_total", result="no_ack_error") == 1


async def test_handler_timeout_sends_no_ack(registry: CollectorRegistry) -> None:
    async def hangs(raw: bytes) -> bytes:
        await asyncio.sleep(60)
        return b""

    limits = MllpLimits(handler_timeout=0.2)
    async with MllpServer(hangs, port=0, limits=limits, metrics=MllpMetrics(registry)) as srv:
        client = await Client.connect(srv.port)
        await client.send(frame(msg("T1")))
        with pytest.raises(TimeoutError):
            await client.ack(timeout=0.6)
        await client.close()
    assert sample_value(registry, "carebus_mllp_messages_total", result="no_ack_timeout") == 1


async def test_hl7_handler_acks_aa_ae_ar(registry: CollectorRegistry) -> None:
    published: list[str] = []

    async def process(message: Hl7Message) -> None:
        if message.control_id == "BAD":
            raise Hl7MappingError("101", "SCH-11", "no slot start")
        published.append(message.control_id or "")

    handler = hl7_handler(process)
    async with MllpServer(handler, port=0, metrics=MllpMetrics(registry)) as srv:
        client = await Client.connect(srv.port)
        await client.send(frame(msg("OK1")) + frame(msg("BAD")) + frame(b"not hl7 at all"))
        ok, bad, garbage = await client.ack(), await client.ack(), await client.ack()
        await client.close()
    assert msa(ok)[1:3] == ["AA", "OK1"]
    assert msa(bad)[1:3] == ["AE", "BAD"]
    assert "ERR||SCH^1^11^1|101^Required field missing^HL70357|E||||no slot start" in bad.decode()
    assert msa(garbage)[1] == "AR"
    assert published == ["OK1"]
    assert parse_message(ok).message_code == "ACK"


async def test_oversized_frame_with_header_gets_ar(registry: CollectorRegistry) -> None:
    limits = MllpLimits(max_message_bytes=500)
    async with MllpServer(echo_aa, port=0, limits=limits, metrics=MllpMetrics(registry)) as srv:
        client = await Client.connect(srv.port)
        await client.send(frame(msg("BIG", "\rNTE|" + "x" * 2000)) + frame(msg("SMALL")))
        nak, ok = await client.ack(), await client.ack()
        await client.close()
    assert msa(nak)[1:3] == ["AR", "BIG"]
    assert "ERR||MSH^1|104^Value too long^HL70357" in nak.decode()
    assert msa(ok)[1:3] == ["AA", "SMALL"]  # connection still usable
    assert sample_value(registry, "carebus_mllp_oversized_frames_total") == 1


async def test_oversized_frame_without_header_closes(registry: CollectorRegistry) -> None:
    limits = MllpLimits(max_message_bytes=500)
    async with MllpServer(echo_aa, port=0, limits=limits, metrics=MllpMetrics(registry)) as srv:
        client = await Client.connect(srv.port)
        await client.send(b"\x0b" + b"z" * 2000)
        assert await client.closed_by_server()
        await client.close()


async def test_idle_timeout_closes_connection(registry: CollectorRegistry) -> None:
    limits = MllpLimits(idle_timeout=0.2)
    async with MllpServer(echo_aa, port=0, limits=limits, metrics=MllpMetrics(registry)) as srv:
        client = await Client.connect(srv.port)
        await client.send(frame(msg("I1")))
        assert msa(await client.ack())[2] == "I1"
        assert await client.closed_by_server()
        await client.close()
    assert sample_value(registry, "carebus_mllp_idle_timeouts_total") == 1


async def test_graceful_close_finishes_in_flight_message(registry: CollectorRegistry) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(raw: bytes) -> bytes:
        started.set()
        await release.wait()
        return build_ack(raw, "AA")

    srv = MllpServer(slow, port=0, metrics=MllpMetrics(registry))
    await srv.start()
    port = srv.port
    busy, idle = await Client.connect(port), await Client.connect(port)
    await busy.send(frame(msg("G1")))
    await asyncio.wait_for(started.wait(), TIMEOUT)
    closing = asyncio.create_task(srv.close(grace=TIMEOUT))
    await asyncio.sleep(0.05)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
    assert await idle.closed_by_server()  # idle connections are closed at once
    release.set()
    assert msa(await busy.ack())[2] == "G1"  # the in-flight message still gets its ACK
    assert await busy.closed_by_server()
    await asyncio.wait_for(closing, TIMEOUT)
    await asyncio.gather(busy.close(), idle.close())


def test_metrics_count_unknown_results_under_unknown(registry: CollectorRegistry) -> None:
    metrics = MllpMetrics(registry)
    metrics.message("aa")
    metrics.message("aa")
    metrics.message("zz")
    assert sample_value(registry, "carebus_mllp_messages_total", result="aa") == 2
    assert sample_value(registry, "carebus_mllp_messages_total", result="unknown") == 1
    assert sample_value(registry, "carebus_mllp_messages_total", result="zz") == 0
