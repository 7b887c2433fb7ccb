"""DFT^P03/P11 over a real MLLP socket into a real JetStream: AA only after the publish ack,
AE/AR with the failing field for bad input (kept in the exception store), no ACK at all
while JetStream is down, and a re-sent message publishes nothing new."""

from __future__ import annotations

import asyncio

import pytest

from carebus_contracts import billing as b
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.mllp import frame
from tests.support.billing import ack_code, mllp_exchange, running_adapter

MSH = "MSH|^~\\&|PM|SITE01|ERP|HUB|20250310091500||DFT^{trigger}|{control}|P|2.5"
CONTEXT = [
    "EVN|P03|20250310091500",
    "PID|1||MRN-9^^^HOSP^MR",
    "PV1|1|O|CLIN1^^^MAIN||||||||||||||||V123",
]


def dft(control: str, *ft1: str, trigger: str = "P03") -> bytes:
    return "\r".join([MSH.format(trigger=trigger, control=control), *CONTEXT, *ft1]).encode()


CHARGE = (
    "FT1|1|CH-1||20250310||CG|99213^Visit^CPT|||2|150.50&USD|75.25&USD|CARD^Cardiology|BCBS"
    "||ROOM1^^^MAIN|||||||||99213^Visit^CPT|25"
)
CREDIT = "FT1|2|CH-0||20250310||CD|99212^Visit^CPT|||1|-80.00&USD"
PAYMENT = "FT1|3|PAY-7|B42|20250310||PY||||1|-50.00|||BCBS"
ADJUSTMENT = "FT1|4|ADJ-3||20250310||AJ|CO-45^Contractual|||1|-20.00"


async def test_dft_lines_become_events_and_a_resend_adds_nothing(
    private_nats: NatsServer, database_url: str
) -> None:
    async with running_adapter(private_nats.url, database_url, default_site="S1") as run:
        message = dft("M1", CHARGE, CREDIT, PAYMENT, ADJUSTMENT, trigger="P11")
        (ack,) = await mllp_exchange(run.mllp_port, message)
        assert ack_code(ack) == "AA"
        events = await run.billing_events()
        kinds = [type(e) for e in events]
        assert kinds == [b.ChargePosted, b.ChargeReversed, b.PaymentPosted, b.AdjustmentPosted]
        charge, credit, payment, adjustment = events
        assert isinstance(charge, b.ChargePosted)
        assert charge.charge.charge_id == "CH-1"
        assert (charge.charge.units, charge.charge.amount.amount_minor) == (2, 15050)
        assert charge.charge.modifiers == ("25",)
        assert charge.site == "SITE01"  # MSH-4
        assert isinstance(credit, b.ChargeReversed)
        assert (credit.reversed_charge_id, credit.charge.amount.amount_minor) == ("CH-0", 8000)
        assert isinstance(payment, b.PaymentPosted)
        assert (payment.amount.amount_minor, payment.payer_code) == (5000, "BCBS")
        assert isinstance(adjustment, b.AdjustmentPosted)
        assert (adjustment.group_code, adjustment.reason_code) == (b.CarcGroup.CONTRACTUAL, "45")
        assert adjustment.amount.amount_minor == 2000  # reduces the balance: positive
        assert adjustment.scope is b.AdjustmentScope.ACCOUNT

        # The sender did not see the ACK and re-sends: AA again, nothing new in the stream.
        (again,) = await mllp_exchange(run.mllp_port, message)
        assert ack_code(again) == "AA"
        assert len(await run.billing_events()) == 4


async def test_bad_dft_gets_ae_or_ar_and_is_kept_for_redrive(
    private_nats: NatsServer, database_url: str
) -> None:
    async with running_adapter(private_nats.url, database_url) as run:
        unknown_type = dft("M2", "FT1|1|X1||20250310||ZZ|99213|||1|10.00")
        no_amount = dft("M3", "FT1|1|X2||20250310||CG|99213|||1")
        not_dft = dft("M4", CHARGE).replace(b"DFT^P03", b"ADT^A01")
        garbage = b"this is not HL7"
        acks = await mllp_exchange(run.mllp_port, unknown_type, no_amount, not_dft, garbage)
        assert [ack_code(a) for a in acks] == ["AE", "AE", "AR", "AR"]
        assert b"ERR|" in acks[0]
        assert b"FT1^1^6" in acks[0].replace(b"|", b"^")
        assert await run.billing_events() == []
        records = await run.exception_records()
        by_raw = {bytes(r["raw"]): r for r in records}
        assert by_raw[unknown_type]["reason"] == "table_value_not_found"
        assert by_raw[unknown_type]["path"] == "FT1-6"
        assert by_raw[no_amount]["reason"] == "required_field_missing"
        assert by_raw[no_amount]["path"] == "FT1-11"
        assert by_raw[not_dft]["reason"] == "unsupported_message_type"
        assert by_raw[garbage]["reason"] == "parse_error"
        assert {r["source"] for r in records} == {"hl7-dft"}
        assert all(r["stage"] == "billing_adapter" and r["status"] == "open" for r in records)


async def test_no_ack_while_jetstream_is_down(private_nats: NatsServer, database_url: str) -> None:
    async with running_adapter(private_nats.url, database_url, publish_timeout_s=1.0) as run:
        private_nats.stop()
        reader, writer = await asyncio.open_connection("127.0.0.1", run.mllp_port)
        try:
            writer.write(frame(dft("M5", CHARGE)))
            await writer.drain()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(3.0):
                    await reader.read(1024)  # no AA, no AE: the sender must retry
        finally:
            writer.close()
        assert await run.exception_records() == []  # a transient failure is not a bad message
        private_nats.start()
        for _ in range(200):  # bounded: the runtime reconnects within a few seconds
            if (await run.http.get("/health/ready")).status_code == 200:
                break
            await asyncio.sleep(0.1)
        # The sender's retry after the outage is acknowledged, once.
        (ack,) = await mllp_exchange(run.mllp_port, dft("M5", CHARGE), timeout_s=30)
        assert ack_code(ack) == "AA"
        assert [type(e) for e in await run.billing_events()] == [b.ChargePosted]
