"""835 delivery through the running adapter (real NATS and PostgreSQL): HTTP upload and the
watched inbox folder. Broken files are rejected whole, naming segment, element and claim;
re-delivered files publish nothing new; rejected inputs can be re-driven, corrected."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from carebus_contracts import billing as b
from carebus_shared import crypto
from carebus_shared.devstack.nats_server import NatsServer
from tests.support.billing import ack_code, mllp_exchange, running_adapter
from tests.support.x12_render import ClaimSpec, LineSpec, RemittanceSpec, render_835

SPEC = RemittanceSpec(
    claims=[
        ClaimSpec("PCN-1", 10000, [("PR", "1", 2000)], [LineSpec(10000, [("CO", "45", 1500)])]),
        ClaimSpec("PCN-2", 25000, [], [LineSpec(15000, [("CO", "45", 5000)]), LineSpec(10000, [])]),
        ClaimSpec("PCN-3", 5000, [("CO", "29", 5000)]),  # denied-like: pays nothing
    ],
    provider_adjustments=[("L6", -125), ("WO", 1000)],
)
VALID = render_835(SPEC)


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


# (mutated file, expected issue "reason@element", the claim the report must name or None)
BROKEN: dict[str, tuple[str, str, str | None]] = {
    "unbalanced claim": (render_835(SPEC, overcharge_claim=1), "claim_unbalanced@CLP04", "PCN-2"),
    "bad amount": (
        _replace_once(VALID, "SVC*HC:99213:25*150.00*", "SVC*HC:99213:25*15O.00*"),
        "invalid_amount@SVC02",
        "PCN-2",
    ),
    "wrong segment count": (_replace_once(VALID, "SE*", "SE*9"), "count_mismatch@SE01", None),
    "payment total": (
        _replace_once(VALID, f"BPR*I*{SPEC.payment // 100}.", f"BPR*I*{SPEC.payment // 100 + 1}."),
        "payment_unbalanced@BPR02",
        None,
    ),
}


def _payments_less_plb(events: list[Any]) -> int:
    paid = sum(e.amount.amount_minor for e in events if isinstance(e, b.PaymentPosted))
    plb = sum(
        e.amount.amount_minor
        for e in events
        if isinstance(e, b.AdjustmentPosted) and e.scope is b.AdjustmentScope.PROVIDER
    )
    return paid - plb


async def test_upload_posts_the_file_and_redelivery_publishes_nothing_new(
    private_nats: NatsServer, database_url: str
) -> None:
    async with running_adapter(private_nats.url, database_url) as run:
        first = await run.http.post("/v1/remittances", content=VALID.encode())
        assert first.status_code == 201, first.json()
        assert first.json()["payment_total_minor"] == SPEC.payment
        events = await run.billing_events()
        assert len(events) == first.json()["events"]
        assert _payments_less_plb(events) == SPEC.payment
        kinds = [type(e).__name__ for e in events]
        assert kinds.count("ClaimAdjudicatedV2") == 3
        assert kinds.count("PaymentPosted") == 2  # PCN-3 pays nothing: no payment event

        again = await run.http.post("/v1/remittances", content=VALID.encode())
        assert (again.status_code, again.json()["duplicate"]) == (200, True)
        # The same content written with other separators is the same file.
        crlf = VALID.replace("~\n", "~\r\n")
        assert (await run.http.post("/v1/remittances", content=crlf.encode())).status_code == 200
        # Forget the file (as if the service crashed before remembering it): JetStream's
        # duplicate window still drops every re-published event id.
        conn = await asyncpg.connect(run.database_url)
        try:
            await conn.execute("DELETE FROM carebus_billing_adapter.remittance_file")
        finally:
            await conn.close()
        third = await run.http.post("/v1/remittances", content=VALID.encode())
        assert third.status_code == 201
        assert len(await run.billing_events()) == len(events)


@pytest.mark.parametrize("case", sorted(BROKEN))
async def test_broken_x12_upload_is_rejected_whole_naming_segment_and_element(
    case: str, private_nats: NatsServer, database_url: str
) -> None:
    text, expected, claim = BROKEN[case]
    async with running_adapter(private_nats.url, database_url) as run:
        response = await run.http.post("/v1/remittances", content=text.encode())
        assert response.status_code == 422
        body = response.json()
        keys = {f"{i['reason']}@{i['element']}" for i in body["issues"]}
        assert expected in keys
        issue = next(i for i in body["issues"] if f"{i['reason']}@{i['element']}" == expected)
        assert issue["segment"] == expected.split("@")[1][:3].rstrip("0123456789")
        assert issue["segment_position"] >= 1
        # The claim is located by its segment, never named: a patient control number is PHI.
        assert "claim" not in issue
        if claim:
            assert claim not in response.text
            assert "1 failing claim(s)" in body["detail"]
        assert await run.billing_events() == []  # nothing half-posted
        (record,) = await run.exception_records()
        assert bytes(record["raw"]) == text.encode()
        assert record["source"] == "x12-835"


async def _wait_for(predicate: Any, timeout_s: float = 15.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not true after {timeout_s} s")


async def test_inbox_folder_moves_files_to_done_or_rejected_with_a_reason(
    private_nats: NatsServer, database_url: str, tmp_path: Path, data_key: crypto.Keyring
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    async with running_adapter(
        private_nats.url, database_url, inbox_dir=str(inbox), inbox_poll_s=0.1, inbox_settle_s=0
    ) as run:
        unbalanced, _, _ = BROKEN["unbalanced claim"]
        (inbox / "good.835").write_text(VALID)
        (inbox / "bad.835").write_text(unbalanced)
        await _wait_for(lambda: not any(p.is_file() for p in inbox.iterdir()))
        # Moved aside sealed (PHI at rest): not the text, but it opens with the data key.
        for moved, text in (("done/good.835", VALID), ("rejected/bad.835", unbalanced)):
            sealed = (inbox / moved).read_bytes()
            assert text.encode() not in sealed
            assert b"PCN-2" not in sealed
            assert crypto.sealed_with(sealed) == data_key.current
            assert data_key.open(sealed) == text.encode()
            assert (inbox / moved).stat().st_mode & 0o077 == 0
        reason = (inbox / "rejected" / "bad.835.reason").read_text()
        for expected in ("claim_unbalanced", "CLP04"):
            assert expected in reason
        assert "PCN-2" not in reason  # the claim's patient control number is PHI
        events = await run.billing_events()
        assert _payments_less_plb(events) == SPEC.payment

        (inbox / "again.835").write_text(VALID)  # re-delivered under another name
        await _wait_for(lambda: (inbox / "done" / "again.835").exists())
        assert len(await run.billing_events()) == len(events)
        records = await run.exception_records()
        # In PostgreSQL the kept input is sealed; the store opens it.
        assert [data_key.open(bytes(r["raw"])) for r in records] == [unbalanced.encode()]
        assert unbalanced.encode() not in bytes(records[0]["raw"])


async def test_rejected_inputs_are_redriven_as_stored_or_corrected(
    private_nats: NatsServer, database_url: str
) -> None:
    async with running_adapter(private_nats.url, database_url) as run:
        unbalanced, _, _ = BROKEN["unbalanced claim"]
        assert (
            await run.http.post("/v1/remittances", content=unbalanced.encode())
        ).status_code == 422
        no_amount = (
            "MSH|^~\\&|PM|SITE01|ERP|HUB|20250310091500||DFT^P03|R1|P|2.5\r"
            "PID|1||MRN-9^^^HOSP^MR\rFT1|1|CH-9||20250310||CG|99213|||1"
        )
        (ack,) = await mllp_exchange(run.mllp_port, no_amount.encode())
        assert ack_code(ack) == "AE"
        x12_record, dft_record = await run.exception_records()

        # As stored, the file is still unbalanced: rejected again, the record stays open.
        still = await run.http.post(f"/v1/exceptions/{x12_record['id']}/redrive")
        assert still.status_code == 422
        assert still.headers["content-type"] == "application/problem+json"
        assert still.json()["outcome"] == "rejected"
        assert {i["reason"] for i in still.json()["report"]["issues"]} == {"claim_unbalanced"}
        corrected = await run.http.post(
            f"/v1/exceptions/{x12_record['id']}/redrive", content=VALID.encode()
        )
        assert corrected.status_code == 200, corrected.json()
        fixed_dft = no_amount + "|125.00"
        dft_redriven = await run.http.post(
            f"/v1/exceptions/{dft_record['id']}/redrive", content=fixed_dft.encode()
        )
        assert dft_redriven.status_code == 200, dft_redriven.json()
        assert dft_redriven.json()["event_ids"], "the re-drive names the events it published"
        statuses = {r["id"]: r["status"] for r in await run.exception_records()}
        assert statuses[x12_record["id"]] == "redriven"
        assert statuses[dft_record["id"]] == "redriven"
        events = await run.billing_events()
        charges = [e for e in events if isinstance(e, b.ChargePosted)]
        assert [c.charge.amount.amount_minor for c in charges] == [12500]
        assert _payments_less_plb(events) == SPEC.payment
        again = await run.http.post(f"/v1/exceptions/{x12_record['id']}/redrive")
        assert again.status_code == 409
        missing = await run.http.post("/v1/exceptions/999999/redrive")
        assert missing.status_code == 404
        # An id past bigint names no record: 404, not a 503 inviting endless retries.
        past_bigint = await run.http.post("/v1/exceptions/1113393791847606925597343744/redrive")
        assert past_bigint.status_code == 404, past_bigint.text


async def test_upload_answers_503_while_jetstream_is_down_and_posts_after(
    private_nats: NatsServer, database_url: str
) -> None:
    async with running_adapter(private_nats.url, database_url, publish_timeout_s=1.0) as run:
        private_nats.stop()
        down = await run.http.post("/v1/remittances", content=VALID.encode())
        assert down.status_code == 503
        assert down.headers["retry-after"]
        private_nats.start()
        await _wait_for_ready(run.http)
        # The file was not remembered as posted, so the client's retry posts it.
        retry = await run.http.post("/v1/remittances", content=VALID.encode())
        assert retry.status_code == 201, retry.json()
        assert _payments_less_plb(await run.billing_events()) == SPEC.payment


async def _wait_for_ready(http: Any) -> None:
    for _ in range(200):
        if (await http.get("/health/ready")).status_code == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the adapter did not become ready again")


async def test_a_large_file_sent_again_while_it_is_posted_waits_and_is_a_duplicate(
    private_nats: NatsServer, database_url: str
) -> None:
    # A client that timed out resends the file: the two take turns (one file's objects in
    # memory at a time), and the second answer is the re-delivery's.
    claims = [
        ClaimSpec(f"PCN-L{n}", 10000, [], [LineSpec(10000, [("CO", "45", 1500)])])
        for n in range(800)
    ]
    large = render_835(RemittanceSpec(claims=claims, provider_adjustments=[]))
    assert len(large) > 64 * 1024  # parsed in a worker thread, as big files are
    async with running_adapter(private_nats.url, database_url) as run:
        answers = await asyncio.gather(
            *(run.http.post("/v1/remittances", content=large.encode()) for _ in range(2))
        )
        assert sorted(a.status_code for a in answers) == [200, 201]
        posted = next(a for a in answers if a.status_code == 201).json()
        assert posted["claims"] == 800
        events = await run.billing_events()
        assert len(events) == posted["events"] == 800 * 3  # adjudication, payment, CO-45
