"""NATS is killed while a sender is mid-stream: no AA for what is not stored, nothing doubled.

The sender behaves like an HL7 interface engine in original mode: it sends a message, waits
for its ACK, and on a timeout or a dropped connection reconnects and sends the same message
again until it gets AA.  NATS (JetStream, fsync always) is SIGKILLed part-way and restarted
on the same port and store a few seconds later.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from carebus_shared.devstack.nats_server import NatsServer
from tests.support.scheduling import (
    MllpClient,
    provision_all,
    read_ack,
    running_adapter,
    settings_for,
    siu_message,
    stored_events,
)

MESSAGES = 60
KILL_AFTER = 15
OUTAGE_S = 3.0


@dataclass(frozen=True)
class Attempt:
    at: float
    control_id: str
    result: str  # the MSA-1 code, or "no-ack"


async def _send_until_acked(
    port: int, payloads: list[tuple[str, bytes]], attempts: list[Attempt], halfway: asyncio.Event
) -> None:
    client: MllpClient | None = None
    for index, (control_id, payload) in enumerate(payloads):
        for _ in range(200):  # bounded: ~5 minutes of retries at most
            try:
                if client is None:
                    client = await MllpClient.connect(port)
                ack = read_ack(await client.send(payload, timeout_s=1.5))
            except (TimeoutError, ConnectionError, OSError, asyncio.IncompleteReadError):
                attempts.append(Attempt(time.monotonic(), control_id, "no-ack"))
                if client is not None:
                    await client.close()
                client = None
                await asyncio.sleep(0.2)
                continue
            attempts.append(Attempt(time.monotonic(), control_id, ack.code))
            assert ack.code == "AA", ack
            break
        else:
            raise AssertionError(f"{control_id} never acknowledged")
        if index == KILL_AFTER:
            halfway.set()
        await asyncio.sleep(0.02)
    if client is not None:
        await client.close()


async def test_nats_killed_mid_stream_no_aa_without_store_and_retries_stored_once(
    private_nats: NatsServer, database_url: str
) -> None:
    await provision_all(private_nats.url)
    settings = settings_for(private_nats.url, database_url, publish_timeout_s=1.0)
    payloads = [(f"OUT-{i:03d}", siu_message(f"OUT-{i:03d}")) for i in range(MESSAGES)]
    attempts: list[Attempt] = []
    halfway = asyncio.Event()

    async with running_adapter(settings) as adapter:
        sender = asyncio.create_task(
            _send_until_acked(adapter.mllp_port, payloads, attempts, halfway)
        )
        await asyncio.wait_for(halfway.wait(), 30)
        await asyncio.to_thread(private_nats.stop, True)  # SIGKILL: a crash, not a shutdown
        killed_at = time.monotonic()
        await asyncio.sleep(OUTAGE_S)
        restarted_at = time.monotonic()
        await asyncio.to_thread(private_nats.start)
        await asyncio.wait_for(sender, 120)

    # Every message was eventually acknowledged, and the outage was felt by the sender.
    acked = {a.control_id for a in attempts if a.result == "AA"}
    assert acked == {cid for cid, _ in payloads}
    refused = [a for a in attempts if a.result == "no-ack"]
    assert refused, "the sender never met the outage"
    # No AA while JetStream could not store anything.
    during = [a for a in attempts if a.result == "AA" and killed_at + 0.1 < a.at < restarted_at]
    assert during == []

    # Each message is in the stream exactly once, retries and pre-crash writes included.
    stored = await stored_events(private_nats.url)
    control_ids = [s.msg_id.split(":")[3] for s in stored]
    assert sorted(control_ids) == sorted(cid for cid, _ in payloads)
    print(
        f"\n{len(refused)} sends went unacknowledged during the outage; "
        f"{len(stored)} events stored for {MESSAGES} messages"
    )
