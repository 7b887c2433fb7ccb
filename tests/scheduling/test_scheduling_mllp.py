"""HL7 v2 over MLLP into the running adapter: real NATS, real PostgreSQL, real clients.

Every SIU and ADT sample is sent over MLLP; each gets one ACK.  AA only for a message whose
event is in the SCHEDULING stream; AE/AR (with ERR naming the place) for one that is kept in
the exception store with its reason.  The committed outcome per sample is the mapping's
expectation file (tests/hl7/sample_expectations.tsv): the adapter must honour it end to end.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.hl7 import parse_message
from carebus_shared.mllp import frame
from tests.support.samples import HL7_EXPECTATIONS, hl7_sample_inputs
from tests.support.scheduling import (
    Adapter,
    MllpClient,
    kept_records,
    provision_all,
    read_ack,
    running_adapter,
    settings_for,
    siu_message,
    stored_events,
    wire_message,
)

MLLP_SEND = Path(sys.executable).with_name("mllp_send")


@pytest.fixture(scope="module")
def sched_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("scheduling-mllp-nats"))
    server.start()
    yield server
    server.stop(kill=True)


@pytest.fixture(scope="module")
async def adapter(sched_nats: NatsServer, database_url: str) -> AsyncIterator[Adapter]:
    await provision_all(sched_nats.url)
    async with running_adapter(settings_for(sched_nats.url, database_url)) as running:
        yield running


def _scheduling_expectations() -> dict[str, tuple[str, str]]:
    rows = {}
    for line in HL7_EXPECTATIONS.read_text().splitlines():
        if line and not line.startswith("#"):
            name, route, outcome, detail = line.split("\t")
            if route == "scheduling":  # SIU and ADT; DFT/BAR belong to the billing adapter
                rows[name] = (outcome, detail)
    return rows


def _expected_event_id(payload: bytes) -> str:
    message = parse_message(payload)
    msh = message.msh
    content = msh.raw_field(9) + "\r" + message.text.split("\r", 1)[1]
    digest = hashlib.blake2b(content.encode(), digest_size=6).hexdigest()
    return f"hl7:{msh.value(3)}:{msh.value(4) or ''}:{message.control_id}:{digest}"


async def test_every_siu_and_adt_sample_is_stored_or_kept_with_its_reason(
    adapter: Adapter, sched_nats: NatsServer, database_url: str
) -> None:
    expected = _scheduling_expectations()
    inputs = hl7_sample_inputs()
    assert expected, "no scheduling rows in the expectation file"
    assert set(expected) <= set(inputs), "a sample named in the expectations is missing"

    accepted: dict[str, tuple[str, str]] = {}  # event id → (event kind, status)
    counts: Counter[tuple[str, str]] = Counter()
    client = await MllpClient.connect(adapter.mllp_port)
    try:
        for name in sorted(expected):
            outcome, detail = expected[name]
            payload = wire_message(inputs[name])
            ack = read_ack(await client.send(payload))
            assert ack.control_id == parse_message(payload).control_id, name
            counts[(name.split("/")[1], outcome)] += 1
            if outcome == "accepted":
                assert ack.code == "AA", (name, ack)
                kind, status = detail.split("/")
                accepted[_expected_event_id(payload)] = (kind, status)
                continue
            reason, location = detail.split("@")
            assert ack.code == ("AR" if reason.startswith("unsupported") else "AE"), (name, ack)
            assert ack.error_location == location, (name, ack)
            records = await kept_records(database_url, "hl7", payload)
            assert [r["reason"] for r in records] == [reason], name
            assert records[0]["path"] == location
            assert records[0]["raw"] == payload
            assert records[0]["content_type"] == "application/hl7-v2"
            assert records[0]["status"] == "open"
    finally:
        await client.close()

    stored = {s.msg_id: s for s in await stored_events(sched_nats.url)}
    assert set(accepted) <= set(stored)
    for event_id, (kind, status) in accepted.items():
        event = stored[event_id].event
        assert event["event_type"] == f"scheduling.appointment.{kind}"
        assert event["appointment"]["status"] == status
        assert stored[event_id].subject.startswith(f"scheduling.appointment.{kind}.v1.")

    print("\nHL7 samples through MLLP, per source:")
    for (source, outcome), n in sorted(counts.items()):
        print(f"  {source:40} {outcome:9} {n}")
    assert sum(n for (_, o), n in counts.items() if o == "accepted") == len(accepted)


async def test_a_retransmitted_message_is_acked_again_and_stored_once(
    adapter: Adapter, sched_nats: NatsServer
) -> None:
    payload = siu_message("RETX-1")
    client = await MllpClient.connect(adapter.mllp_port)
    try:
        acks = [read_ack(await client.send(payload)) for _ in range(3)]
    finally:
        await client.close()
    assert [a.code for a in acks] == ["AA", "AA", "AA"]
    ids = [s.msg_id for s in await stored_events(sched_nats.url)]
    assert ids.count(_expected_event_id(payload)) == 1
    metrics = (await adapter.http.get("/metrics")).text
    assert 'carebus_mllp_messages_total{result="aa"}' in metrics
    assert 'carebus_intake_inputs_total{outcome="accepted",source="hl7"}' in metrics


async def test_a_nul_in_the_control_id_gets_ae_and_the_other_messages_flow(
    adapter: Adapter, sched_nats: NatsServer, database_url: str
) -> None:
    messages = [siu_message(f"NUL-{i}") for i in range(20)]
    messages[7] = siu_message("NUL-\x00-7")
    client = await MllpClient.connect(adapter.mllp_port)
    try:
        acks = [read_ack(await client.send(m)) for m in messages]
    finally:
        await client.close()
    assert [a.code for a in acks] == ["AA"] * 7 + ["AE"] + ["AA"] * 12
    stored = {s.msg_id for s in await stored_events(sched_nats.url)}
    assert {_expected_event_id(m) for i, m in enumerate(messages) if i != 7} <= stored
    [record] = await kept_records(database_url, "hl7", messages[7])
    assert record["reason"] == "data_type_error"
    assert "NUL" in record["message"]
    assert record["raw"] == messages[7]


async def test_unparseable_input_gets_ar_and_is_kept(adapter: Adapter, database_url: str) -> None:
    payload = b"MSH|^~\\&|CADENCE|SITE01|||20250310091500||SIU^S12|BROKEN-1|P|2.5.1\rpid|bad"
    client = await MllpClient.connect(adapter.mllp_port)
    try:
        ack = read_ack(await client.send(payload))
    finally:
        await client.close()
    assert ack.code == "AR"
    assert ack.control_id == "BROKEN-1"
    [record] = await kept_records(database_url, "hl7", payload)
    assert record["reason"] == "parse_error"
    assert record["category"] == "contract"
    assert record["raw"] == payload


@pytest.mark.skipif(not MLLP_SEND.exists(), reason="python-hl7 mllp_send not installed")
async def test_mllp_send_sends_a_file_and_gets_one_ack_per_message(
    adapter: Adapter, sched_nats: NatsServer, tmp_path: Path
) -> None:
    messages = [siu_message(f"FILE-{i}") for i in range(20)]
    messages.insert(7, siu_message("FILE-BAD", slot=""))  # no slot: AE, kept
    batch = tmp_path / "messages.mllp"
    batch.write_bytes(b"".join(frame(m) for m in messages))
    proc = await asyncio.create_subprocess_exec(
        str(MLLP_SEND), "-p", str(adapter.mllp_port), "-f", str(batch), "127.0.0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, stderr.decode()
    acks = [read_ack(a.strip(b"\x1c\r\n")) for a in stdout.split(b"\x0b")[1:]]
    assert [a.control_id for a in acks] == [parse_message(m).control_id for m in messages]
    assert [a.code for a in acks] == ["AE" if i == 7 else "AA" for i in range(len(messages))]
    assert acks[7].error_location == "SCH-11"
    stored = {s.msg_id for s in await stored_events(sched_nats.url)}
    good = [m for i, m in enumerate(messages) if i != 7]
    assert {_expected_event_id(m) for m in good} <= stored
