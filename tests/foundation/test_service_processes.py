"""Service processes against real NATS and PostgreSQL: readiness, outages, SIGTERM."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest

from carebus_shared.cli.services import discover
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.jetstream.topology import TOPOLOGY
from tests.support.echo_stage import CONSUMER, OUT_STREAM
from tests.support.service_process import (
    EchoFactory,
    http_get,
    provision_topology,
    service_process,
    wait_until,
)


async def _publish(url: str, count: int, start: int = 0) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for i in range(start, start + count):
            await js.publish(f"echo.in.{i % 4}", b"x", headers={"Nats-Msg-Id": f"e{i}"})
    finally:
        await nc.close()


async def _counts(url: str) -> tuple[int, int, int]:
    """(messages in ECHO_OUT, pending for the echo consumer, awaiting ack)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        out = (await js.stream_info(OUT_STREAM.name)).state.messages
        info = await js.consumer_info(CONSUMER.stream, CONSUMER.durable)
        return out, info.num_pending or 0, info.num_ack_pending or 0
    finally:
        await nc.close()


def counts(url: str) -> tuple[int, int, int]:
    return asyncio.run(_counts(url))


@pytest.mark.slow
def test_every_service_process_becomes_ready_and_stops_cleanly(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    asyncio.run(provision_topology(nats_url, TOPOLOGY))
    processes = []
    try:
        for service in discover():
            processes.append(service_process(service, nats_url, database_url, tmp_path).start())
        assert len(processes) == 7
        for process in processes:
            process.wait_ready()
            status, body = http_get(f"{process.base}/metrics")
            assert status == 200
            assert b"carebus_stage_messages_total" in body
            status, body = http_get(f"{process.base}/schema/openapi.json")
            assert status == 200
            assert b'"/health/ready"' in body
            assert http_get(f"{process.base}/health/live")[0] == 200
        for process in processes:
            assert process.terminate() == 0
    finally:
        for process in processes:
            process.kill()


@pytest.mark.slow
def test_readiness_follows_nats_and_consumption_resumes_without_restart(
    echo_nats: NatsServer, echo_process: EchoFactory, tmp_path: Path
) -> None:
    stage = echo_process(echo_nats.url, tmp_path / "echo.log", 0.0).start()
    try:
        stage.wait_ready()
        asyncio.run(_publish(echo_nats.url, 20))
        wait_until(lambda: counts(echo_nats.url)[0] == 20, 20, "first 20 echoed")

        echo_nats.stop(kill=True)
        wait_until(lambda: not stage.ready(), 15, "readiness to go red")
        checks = stage.readiness()["checks"]
        assert isinstance(checks, dict)
        assert checks["nats"] != "ok"

        echo_nats.start()  # same port, same store
        wait_until(stage.ready, 30, "readiness to return")
        asyncio.run(_publish(echo_nats.url, 20, start=20))
        wait_until(lambda: counts(echo_nats.url)[0] == 40, 30, "messages after the outage")
        assert stage.process is not None
        assert stage.process.poll() is None, "it never restarted"
    finally:
        stage.kill()


@pytest.mark.slow
def test_sigterm_during_processing_loses_no_message(
    echo_nats: NatsServer, echo_process: EchoFactory, tmp_path: Path
) -> None:
    total = 300
    asyncio.run(_publish(echo_nats.url, total))
    # 0.3 s per batch of 10: about 10 s of work, so SIGTERM lands mid-stream.
    stage = echo_process(echo_nats.url, tmp_path / "echo1.log", 0.3).start()
    try:
        wait_until(lambda: counts(echo_nats.url)[0] >= 50, 30, "processing under way")
        assert stage.terminate(timeout_s=20) == 0
        done_at_stop, pending, in_flight = counts(echo_nats.url)
        assert done_at_stop < total, "SIGTERM came too late to test anything"
        # In-flight batches finished and were acked, not abandoned.
        assert in_flight == 0, f"{in_flight} messages left unacked at shutdown"
        assert done_at_stop + pending == total
    finally:
        stage.kill()
    again = echo_process(echo_nats.url, tmp_path / "echo2.log", 0.0).start()
    try:
        wait_until(lambda: counts(echo_nats.url)[:2] == (total, 0), 60, "the rest after restart")
    finally:
        again.kill()
    # Each input produced exactly one output: nothing lost, nothing doubled.
    assert counts(echo_nats.url)[0] == total
