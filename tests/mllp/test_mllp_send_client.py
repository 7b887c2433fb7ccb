"""A real MLLP client (python-hl7's ``mllp_send``) talks to the server over loopback."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from carebus_shared.hl7 import build_ack, parse_message
from carebus_shared.mllp import MllpMetrics, MllpServer, frame
from tests.support.samples import SAMPLES

SAMPLE_FILES = [
    "hl7v2/microsoft-FHIR-Converter/data/SampleData/Hl7v2/SIU-S12-01.hl7",  # LF
    "hl7v2/rimiti-hl7-object-parser/extracted/SIU_S15_fr_utf8_cr.hl7",  # CR, non-ASCII
    "hl7v2/hapifhir-hapi-hl7v2/extracted/SIU_S14_ORSOS_nested_RGS_groups.hl7",
    "hl7v2/madhav-nasit-hl7-generate-parse/extracted/DFT_P03_allscripts_healthmatics.hl7",
]
MLLP_SEND = Path(sys.executable).with_name("mllp_send")


def _as_wire_message(path: Path) -> bytes:
    text = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    return b"\r".join(s for s in re.split(rb"\r\n|\r|\n", text) if s)


@pytest.mark.skipif(not MLLP_SEND.exists(), reason="python-hl7 mllp_send not installed")
async def test_mllp_send_gets_one_ack_per_message(tmp_path: Path) -> None:
    messages = [_as_wire_message(SAMPLES / name) for name in SAMPLE_FILES]
    batch = tmp_path / "batch.mllp"
    batch.write_bytes(b"".join(frame(m) for m in messages))
    received: list[bytes] = []

    async def handler(raw: bytes) -> bytes:
        received.append(raw)
        return build_ack(raw, "AA")

    async with MllpServer(handler, port=0, metrics=MllpMetrics(CollectorRegistry())) as server:
        proc = await asyncio.create_subprocess_exec(
            str(MLLP_SEND), "-p", str(server.port), "-f", str(batch), "127.0.0.1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), 20)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, stderr.decode()
    assert received == messages
    acks = [a.strip(b"\x1c\r\n") for a in stdout.split(b"\x0b")[1:]]
    assert len(acks) == len(messages)
    for ack, original in zip(acks, messages, strict=True):
        parsed = parse_message(ack)
        assert parsed.message_code == "ACK"
        msa = parsed.segment("MSA")
        assert msa is not None
        assert msa.value(1) == "AA"
        assert msa.value(2) == parse_message(original).control_id
