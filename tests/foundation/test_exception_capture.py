"""Rejected and given-up messages end in the exception store, announced on EXCEPTIONS."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import nats

from carebus_contracts import decode_message
from carebus_contracts.exceptions import ExceptionRaised
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.exceptions.events import stage_of
from tests.support.service_process import EchoFactory, wait_until


async def _publish(url: str, msg_id: str, outcome: str) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().publish(
            "echo.in.1", b"payload", headers={"Nats-Msg-Id": msg_id, "Echo-Outcome": outcome}
        )
    finally:
        await nc.close()


async def _records(database_url: str, event_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(
            await conn.fetch(
                "SELECT reason, category, stage, raw, path, offending_value, stream "
                "FROM carebus_exceptions.exception_record WHERE event_id = $1",
                event_id,
            )
        )
    finally:
        await conn.close()


async def _exception_events(url: str) -> list[ExceptionRaised]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe("exceptions.>", stream="EXCEPTIONS")
        try:
            msgs = await sub.fetch(100, timeout=1)
        except nats.errors.TimeoutError:
            return []
        events = [decode_message(m.subject, m.data, m.headers) for m in msgs]
        return [e for e in events if isinstance(e, ExceptionRaised)]
    finally:
        await nc.close()


def records(database_url: str, event_id: str) -> list[asyncpg.Record]:
    return asyncio.run(_records(database_url, event_id))


def test_consumer_names_map_to_contract_stages() -> None:
    assert stage_of("masterdata-validator-billing") is not None
    assert stage_of("erp-poster") is not None
    assert stage_of("exception-capture") is None


def test_rejected_and_exhausted_messages_are_recorded_once(
    echo_nats: NatsServer, echo_process: EchoFactory, database_url: str, tmp_path: Path
) -> None:
    stage = echo_process(echo_nats.url, tmp_path / "echo.log", 0.0).start()
    try:
        stage.wait_ready()
        asyncio.run(_publish(echo_nats.url, "rej-1", "reject"))
        asyncio.run(_publish(echo_nats.url, "retry-1", "retry"))
        # The reject is recorded by the stage with its specific reason; the terminate
        # advisory that follows finds the record already there and adds nothing.
        wait_until(lambda: len(records(database_url, "rej-1")) == 1, 20, "reject recorded")
        # The retried message exhausts max_deliver=3; the advisory records it.
        wait_until(lambda: len(records(database_url, "retry-1")) == 1, 30, "advisory captured")
        asyncio.run(asyncio.sleep(2))  # let the terminate advisory be processed too
        [rejected] = records(database_url, "rej-1")
        assert (rejected["reason"], rejected["category"]) == ("echo_rejected", "contract")
        assert rejected["raw"] == b"payload"
        assert (rejected["path"], rejected["offending_value"]) == ("$.body", "x")
        [given_up] = records(database_url, "retry-1")
        assert given_up["reason"] == "max_deliveries_exhausted"
        assert given_up["stage"] == "echo"
        assert given_up["raw"] == b"payload"
        events = asyncio.run(_exception_events(echo_nats.url))
        by_code = {e.reason_code: e for e in events}
        assert by_code["echo_rejected"].original is not None
        assert by_code["echo_rejected"].original.stream == "ECHO_IN"
        assert by_code["echo_rejected"].offending_value == "x"
    finally:
        stage.kill()
