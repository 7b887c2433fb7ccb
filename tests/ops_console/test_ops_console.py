"""The ops console as a real process on a private NATS and a database of its own: contract
events published straight to the streams, its tracker following them on its own durables;
traces, the per-site table, the pipeline view, the metrics, and the rebuild."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import nats
import pytest
from nats.js import JetStreamContext

from carebus_contracts import encode, headers_for, subject_for
from carebus_contracts import scheduling as s
from carebus_contracts.envelope import Event
from carebus_shared import audit
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.devstack.ports import free_port
from carebus_shared.exceptions import store as exception_store
from carebus_shared.exceptions.store import ExceptionRecord
from carebus_shared.jetstream.provision import provision
from carebus_shared.jetstream.publish import Outgoing, publish_confirmed
from carebus_shared.jetstream.topology import TOPOLOGY
from tests.support import auth
from tests.support.mapper import appointment, fresh_database
from tests.support.ops_console import SITE, journey, quarantined
from tests.support.service_process import ServiceProcess, http_get

pytestmark = pytest.mark.slow

CAREBUS = str(Path(sys.executable).parent / "carebus")


def _json(url: str, method: str = "GET") -> tuple[int, Any]:
    request = urllib.request.Request(url, method=method, headers=auth.HEADERS)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def _publish(js: JetStreamContext, events: Sequence[Event], msg_id_suffix: str = "") -> None:
    outgoing = []
    for e in events:
        msg_id = e.event_id + msg_id_suffix
        headers = {**headers_for(e), "Nats-Msg-Id": msg_id}
        outgoing.append(Outgoing(subject_for(e), encode(e), msg_id, headers))
    await publish_confirmed(js, outgoing)


def _lag(base: str) -> int:
    _, body = _json(f"{base}/v1/pipeline")
    return sum(c["pending"] + c["ack_pending"] for c in body["consumers"] if c["tracker"])


async def _until(predicate: Any, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Console:
    def __init__(self, process: ServiceProcess, js: JetStreamContext, db_url: str) -> None:
        self.process, self.js, self.db_url = process, js, db_url
        self.base = process.base

    def trace(self, kind: str, key: str) -> tuple[int, Any]:
        return _json(f"{self.base}/v1/trace/{kind}/{key}")

    async def audited(self, action: str, target_id: str) -> list[tuple[str, str, str]]:
        """(actor, target, outcome) of the audit entries matching, oldest first."""
        conn = await asyncpg.connect(self.db_url)
        try:
            found = await audit.entries(conn, action=action, target_id=target_id)
        finally:
            await conn.close()
        return [(e.actor, f"{e.target_kind}:{e.target_id}", e.outcome) for e in reversed(found)]

    async def caught_up(self) -> None:
        await _until(lambda: _lag(self.base) == 0, "the tracker to read every stream")

    def metrics(self) -> str:
        return http_get(f"{self.base}/metrics", 5)[1].decode()


def _records(parked: Event, seq: int) -> list[ExceptionRecord]:
    """What the validator and an adapter would have recorded: A-4 parked, an input refused."""
    return [
        ExceptionRecord(
            dedupe_key="parked-A-4", stage="masterdata-validator-scheduling",
            category="masterdata", reason="unknown_provider", message="m", source="jetstream",
            site=SITE, event_id=parked.event_id, stream="SCHEDULING", stream_seq=seq,
            subject="x",
        ),
        ExceptionRecord(
            dedupe_key="refused-1", stage="scheduling-adapter", category="contract",
            reason="bad_segment", message="m", source="mllp", site="SITE99",
        ),
    ]  # fmt: skip


@pytest.fixture(scope="module")
async def console(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Console]:
    server = NatsServer(tmp_path_factory.mktemp("ops-nats"))
    server.start()
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    await provision(js, TOPOLOGY)
    logs = tmp_path_factory.mktemp("ops-logs")
    async with fresh_database(database_url) as db_url:
        port = free_port()
        env = {
            "NATS_URL": server.url,
            "DATABASE_URL": db_url,
            "CAREBUS_OPS_CONSOLE_HTTP_PORT": str(port),
            "CAREBUS_OPS_CONSOLE_FIGURES_REFRESH_S": "0.3",
            "CAREBUS_OPS_CONSOLE_JETSTREAM_POLL_S": "0.3",
            "CAREBUS_OPS_CONSOLE_COMPLETED_WITHOUT_CHARGE_H": "0",
            "CAREBUS_OPS_CONSOLE_CHARGES_UNPOSTED_H": "0",
            "CAREBUS_OPS_CONSOLE_JOURNALS_UNCONFIRMED_H": "0",
            "CAREBUS_OPS_CONSOLE_SERVICE_URLS": f"mapper=http://127.0.0.1:{free_port()}",
            "CAREBUS_SHUTDOWN_GRACE_S": "5",
        }
        argv = [sys.executable, "-m", "carebus_ops.entrypoints.cli", "serve"]
        process = ServiceProcess(argv, env, port, logs / "ops.log").start()
        try:
            await asyncio.to_thread(process.wait_ready, 60)
            await _publish(js, journey())
            parked = appointment(s.AppointmentBooked, "A-4", 1)
            ack = await js.publish(subject_for(parked), encode(parked), headers=headers_for(parked))
            await _publish(js, [quarantined(parked, ack.seq)])
            conn = await asyncpg.connect(db_url)
            try:
                await exception_store.record_all(conn, _records(parked, ack.seq))
            finally:
                await conn.close()
            console = Console(process, js, db_url)
            await console.caught_up()
            yield console
        finally:
            process.kill()
            await nc.close()
            server.stop()


async def test_an_appointment_is_traced_through_to_the_erp_confirmation(console: Console) -> None:
    status, body = console.trace("appointment", "A-1")
    assert status == 200, body
    assert (body["kind"], body["id"], body["site"]) == ("appointment", "A-1", SITE)
    linked = {(x["kind"], x["id"]): x for x in body["linked"]}
    # The charge through its appointment id, the claim through the charge's service line,
    # the charge's journal through its source event.
    assert set(linked) == {("charge", "CH-1"), ("claim", "CLM-1"), ("journal", "J-1")}
    assert linked[("journal", "J-1")]["stage"] == "confirmed"
    own = sorted((x["stage"], x["status"]) for x in body["timeline"] if x["kind"] == "appointment")
    assert own == [
        ("received", "booked"), ("received", "completed"),
        ("validated", "booked"), ("validated", "completed"),
    ]  # fmt: skip
    journal = [x for x in body["timeline"] if x["kind"] == "journal"]
    assert [x["stage"] for x in journal] == ["mapped", "posted", "confirmed"]
    assert journal[-1]["erp_document"] == "DOC-77"
    times = [x["at"] for x in body["timeline"]]
    assert times == sorted(times)


async def test_a_journal_links_back_to_its_charge_and_appointment(console: Console) -> None:
    status, body = console.trace("journal", "J-1")
    assert status == 200
    assert body["stage"] == "confirmed"
    assert {(x["kind"], x["id"]) for x in body["linked"]} >= {
        ("charge", "CH-1"),
        ("appointment", "A-1"),
        ("claim", "CLM-1"),
    }


async def test_a_parked_appointment_stands_in_quarantine(console: Console) -> None:
    status, body = console.trace("appointment", "A-4")
    assert status == 200
    assert body["stage"] == "quarantined"
    parked = [x for x in body["timeline"] if x["stage"] == "quarantined"]
    assert [(x["exception_stage"], x["reason_code"]) for x in parked] == [
        ("masterdata_validator", "unknown_provider")
    ]


async def test_unknown_entities_and_kinds_are_problems(console: Console) -> None:
    status, body = console.trace("appointment", "NOPE")
    assert status == 404
    assert body["status"] == 404
    assert "appointment" in body["detail"]
    status, body = console.trace("spaceship", "A-1")
    assert status == 400
    assert "appointment" in body["detail"]


async def test_every_trace_looked_at_is_audited_found_or_not(console: Console) -> None:
    before = len(await console.audited("phi_view", "A-2"))
    assert console.trace("appointment", "A-2")[0] == 200
    assert console.trace("charge", "A-2")[0] == 404
    assert (await console.audited("phi_view", "A-2"))[before:] == [
        (auth.NAME, "appointment:A-2", "shown"),  # the client whose key the test sends
        (auth.NAME, "charge:A-2", "not_found"),
    ]


async def test_a_redelivered_or_replayed_event_adds_no_step(console: Console) -> None:
    # The same events again under other message ids: JetStream keeps both copies.
    await _publish(console.js, journey(), msg_id_suffix="-replayed")
    await console.caught_up()
    conn = await asyncpg.connect(console.db_url)
    try:
        steps = await conn.fetchval(
            "SELECT count(*) FROM carebus_ops.step WHERE kind = 'appointment' "
            "AND entity_key = 'A-1'"
        )
        links = await conn.fetchval("SELECT count(*) FROM carebus_ops.link")
        sources = await conn.fetchval("SELECT count(*) FROM carebus_ops.journal_source")
    finally:
        await conn.close()
    assert steps == 4
    # appointment-charge, claim-charge, claim-payment: each both ways, once.
    assert links == 6
    assert sources == 1


def _sample(text: str, name: str, labels: dict[str, str]) -> float | None:
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        if dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or "")) == labels:
            return float(match.group(3))
    return None


async def test_business_metrics_carry_bounded_site_labels(console: Console) -> None:
    def refreshed() -> bool:
        text = console.metrics()
        return _sample(text, "carebus_ops_completed_without_charge", {"site": SITE}) is not None

    await _until(refreshed, "the business gauges")
    text = console.metrics()
    assert _sample(text, "carebus_ops_completed_without_charge", {"site": SITE}) == 1.0
    # SITE99 is in no master data and no configuration.
    assert _sample(text, "carebus_ops_completed_without_charge", {"site": "_other"}) == 1.0
    assert 'site="SITE99"' not in text
    assert _sample(text, "carebus_ops_charges_unposted", {"site": SITE}) == 0.0
    assert _sample(text, "carebus_ops_journals_unconfirmed", {"site": SITE}) == 0.0
    parked = {"site": SITE, "reason": "unknown_provider"}
    assert _sample(text, "carebus_ops_quarantined", parked) == 1.0
    open_ = {"site": SITE, "stage": "masterdata_validator", "reason": "masterdata"}
    assert _sample(text, "carebus_ops_exceptions_open", open_) == 1.0
    assert _sample(text, "carebus_ops_exceptions_raised_total", open_) == 1.0
    refused = {"stage": "scheduling_adapter", "site": "_other"}
    assert _sample(text, "carebus_ops_inputs_refused_total", refused) == 1.0
    oldest = _sample(
        text, "carebus_ops_completed_without_charge_oldest_age_seconds", {"site": SITE}
    )
    assert oldest is not None
    assert oldest > 3600  # completed in March 2025


async def test_jetstream_metrics_and_no_created_series(console: Console) -> None:
    # Nothing reads the pipeline's durables here: the validator's holds every SCHEDULING event.
    labels = {"stream": "SCHEDULING", "consumer": "masterdata-validator-scheduling"}

    def polled_after_publishing() -> bool:
        # One scrape showing both: a poll from before the events were published shows lag 0 too.
        text = console.metrics()
        lag = _sample(text, "carebus_ops_tracker_lag_messages", {"stream": "SCHEDULING"})
        pending = _sample(text, "carebus_jetstream_consumer_pending_messages", labels) or 0
        return lag == 0.0 and pending >= 5

    await _until(polled_after_publishing, "the JetStream gauges to show the tracker caught up")
    text = console.metrics()
    assert "_created" not in text
    for spec in TOPOLOGY.consumers:  # a partitioned stage as a whole (ADR 030)
        consumer = {"stream": spec.stream, "consumer": spec.stage}
        assert _sample(text, "carebus_jetstream_consumer_pending_messages", consumer) is not None
    age = _sample(text, "carebus_jetstream_consumer_oldest_unacked_age_seconds", labels)
    assert age is not None
    assert age > 0
    assert (_sample(text, "carebus_ops_tracker_events_total", {"stream": "ERP"}) or 0) >= 3


async def test_sites_and_pipeline_answer_json(console: Console) -> None:
    status, body = _json(f"{console.base}/v1/sites")
    assert status == 200
    assert body["registered"] == [SITE]
    sites = {x["site"]: x for x in body["sites"]}
    assert sites[SITE]["completed_without_charge"]["count"] == 1
    assert sites[SITE]["quarantined"] == 1
    assert sites["SITE99"]["registered"] is False
    status, body = _json(f"{console.base}/v1/pipeline")
    assert status == 200
    assert {c["consumer"] for c in body["consumers"]} == set(TOPOLOGY.stages)
    assert [(x["service"], x["ready"], x["detail"]) for x in body["services"]] == [
        ("mapper", False, "down")
    ]
    status, spec = _json(f"{console.base}/schema/openapi.json")
    assert {"/v1/trace/{kind}/{entity_id}", "/v1/sites", "/v1/pipeline"} <= set(spec["paths"])


def _carebus(*args: str, timeout_s: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CAREBUS, *args], capture_output=True, text=True, timeout=timeout_s, check=False
    )


async def test_the_trace_command_prints_the_timeline(console: Console) -> None:
    result = await asyncio.to_thread(_carebus, "trace", "appointment", "A-1", "--url", console.base)
    assert result.returncode == 0, result.stderr
    assert "appointment A-1" in result.stdout
    assert re.search(r"journal J-1 +confirmed", result.stdout)
    result = await asyncio.to_thread(_carebus, "trace", "charge", "NOPE", "--url", console.base)
    assert result.returncode == 1
    assert "no charge" in result.stderr


_TRACED = [("appointment", "A-1"), ("journal", "J-1"), ("appointment", "A-4"), ("claim", "CLM-1")]


async def test_a_rebuild_from_the_streams_gives_the_same_traces(console: Console) -> None:
    before = [console.trace(kind, key) for kind, key in _TRACED]
    assert all(status == 200 for status, _ in before)
    result = await asyncio.to_thread(
        _carebus, "ops", "rebuild", "--url", console.base, "--wait", "60"
    )
    assert result.returncode == 0, result.stderr
    assert "rebuilt" in result.stdout
    to_read = int(re.search(r"rebuilding: (\d+) messages", result.stdout).group(1))  # type: ignore[union-attr]
    assert to_read > 20  # every stream read again from its start
    after = [console.trace(kind, key) for kind, key in _TRACED]
    assert after == before
    [(actor, target, outcome)] = await console.audited("rebuild", "ops-tracker")
    assert (target, outcome) == ("tracker:ops-tracker", "started")
    assert actor  # the CLI's --actor (the OS user by default)
