"""Plays a scenario into a running suite through the adapters' real entry points.

* HL7 SIU and DFT over MLLP: several persistent connections per adapter, stop-and-wait
  (send, read the ACK, next) as interface engines do; no ACK within the timeout means
  "not stored": the message is sent again, as a sender would.
* FHIR over HTTP (POST/PUT), 835 files by upload (``POST /v1/remittances``) or dropped into
  the billing inbox folder (written under a dot name, then renamed), the CSV export through
  the scheduling adapter's import command.

Every input of one *lane* (one appointment, one visit's billing, the upload desk) goes through
one connection in order, so the order a source system keeps is kept. Inputs are offered at a
fixed rate of events per second (``rate``) or as fast as the suite takes them (None).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from carebus_scenario.endpoints import Endpoints
from carebus_scenario.generator import Scenario
from carebus_scenario.model import CSV, DFT, FHIR, SIU, X12_INBOX, X12_UPLOAD, Delivery
from carebus_scenario.network import Network, masterdata_imports, record_count
from carebus_shared.auth.client import bearer, cli_key

START_BLOCK, END_BLOCK = b"\x0b", b"\x1c\r"
ACK_TIMEOUT_S = 30.0
SEND_ATTEMPTS = 6


class PlayError(RuntimeError):
    """The suite did not take an input after every retry."""


@dataclass(frozen=True)
class Sent:
    delivery: Delivery
    answer: str
    sent_at: float  # time.time() when first sent
    acked_at: float  # time.time() when the adapter answered (accepted or refused)


@dataclass(frozen=True)
class Progress:
    inputs_done: int
    inputs_total: int
    events_done: int
    events_total: int
    answers: Counter[str]
    elapsed_s: float


@dataclass
class PlayReport:
    sent: list[Sent] = field(default_factory=list)
    started_at: float = 0.0
    finished_at: float = 0.0
    stopped: bool = False

    @property
    def surprises(self) -> list[str]:
        """Inputs whose answer differs from what the scenario expects."""
        return [
            f"{s.delivery.label}: expected {s.delivery.expected_answer}, got {s.answer}"
            for s in self.sent
            if s.answer != s.delivery.expected_answer
        ]

    def answers(self) -> Counter[str]:
        return Counter(f"{s.delivery.channel} {s.answer}" for s in self.sent)

    @property
    def events(self) -> int:
        return sum(len(s.delivery.facts) for s in self.sent)


# -- master data ------------------------------------------------------------------------------
async def load_masterdata(network: Network, validator_http: str, timeout_s: float = 60.0) -> int:
    """Import the network through the validator's bulk API, then wait until its view holds
    it (events validated earlier would be quarantined for want of master data)."""
    # The key (CAREBUS_API_KEY) needs masterdata:write; its client is recorded as the actor.
    headers = bearer(cli_key())
    async with httpx.AsyncClient(base_url=validator_http, timeout=30.0, headers=headers) as client:
        for collection, records in masterdata_imports(network):
            response = await client.post(f"/v1/{collection}/import", json=records)
            if response.status_code != 200:
                raise PlayError(
                    f"master-data import of {collection} failed: {response.status_code} "
                    f"{response.text[:500]}"
                )
        wanted = record_count(network)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await _view_records(client) >= wanted:
                return wanted
            await asyncio.sleep(0.2)
    raise PlayError(f"the validator's master-data view did not reach {wanted} records")


async def _view_records(client: httpx.AsyncClient) -> float:
    response = await client.get("/metrics")
    for line in response.text.splitlines():
        if line.startswith("carebus_validator_view_records "):
            return float(line.split()[1])
    return 0.0


# -- senders ----------------------------------------------------------------------------------
class MllpClient:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def send(self, payload: bytes) -> str:
        """Send one message and return its ACK code (MSA-1); retries until it is answered."""
        for attempt in range(SEND_ATTEMPTS):
            try:
                if self._writer is None:
                    self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
                assert self._reader is not None
                self._writer.write(START_BLOCK + payload + END_BLOCK)
                await self._writer.drain()
                async with asyncio.timeout(ACK_TIMEOUT_S):
                    ack = await self._reader.readuntil(END_BLOCK)
                return ack_code(ack)
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                await self.close()
                await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
        raise PlayError(f"no ACK from {self.host}:{self.port} after {SEND_ATTEMPTS} attempts")

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


def ack_code(frame: bytes) -> str:
    text = frame.strip(b"\x0b\x1c\r\n").decode(errors="replace")
    for segment in text.split("\r"):
        if segment.startswith("MSA|"):
            return segment.split("|")[1]
    return "no MSA"


async def _http(client: httpx.AsyncClient, delivery: Delivery, path: str) -> httpx.Response:
    for attempt in range(SEND_ATTEMPTS):
        try:
            response = await client.request(
                delivery.method or "POST", path, content=delivery.payload, headers=delivery.headers
            )
        except httpx.TransportError:
            await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
            continue
        if response.status_code != 503:
            return response
        await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
    raise PlayError(f"{delivery.label}: the adapter stayed unavailable")


def _fhir_answer(status: int) -> str:
    return "accepted" if status in (200, 201) else "refused" if 400 <= status < 500 else str(status)


def _upload_answer(status: int) -> str:
    return {201: "posted", 200: "duplicate", 422: "rejected"}.get(status, str(status))


class Player:
    def __init__(
        self,
        scenario: Scenario,
        endpoints: Endpoints,
        workdir: Path,
        *,
        rate: float | None = None,
        connections: int = 8,
        progress: Callable[[Progress], None] | None = None,
        progress_every_s: float = 2.0,
        should_stop: Callable[[], bool] = lambda: False,
        import_prefix: Sequence[str] = (),
    ) -> None:
        self.scenario = scenario
        self.import_prefix = tuple(import_prefix)  # e.g. a profiler the CSV import runs under
        self.endpoints = endpoints
        self.workdir = workdir
        self.rate = rate
        self.connections = max(1, connections)
        self.progress = progress
        self.progress_every_s = progress_every_s
        self.should_stop = should_stop
        self.report = PlayReport()
        self._answers: Counter[str] = Counter()
        self._events_done = 0

    def _worker_of(self, delivery: Delivery) -> str:
        spread = zlib.crc32(delivery.lane.encode())
        if delivery.channel == SIU:
            return f"siu{spread % self.connections}"
        if delivery.channel == DFT:
            return f"dft{spread % max(1, self.connections // 2)}"
        if delivery.channel == FHIR:
            return f"fhir{spread % max(1, self.connections // 2)}"
        return delivery.channel

    async def play(self, deliveries: list[Delivery] | None = None) -> PlayReport:
        todo = self.scenario.deliveries if deliveries is None else deliveries
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.report.started_at = time.time()
        start = time.monotonic()
        total_events = sum(len(d.facts) for d in todo)
        # The opening inputs (earlier visits' charges) are all answered before the day
        # starts: the claims the day's 835 files settle are then known (docs/decisions/021).
        phases = [[d for d in todo if d.opening], [d for d in todo if not d.opening]]
        async with httpx.AsyncClient(timeout=60.0, headers=bearer(cli_key())) as client:
            ticker = asyncio.create_task(self._tick(len(todo), total_events, start))
            try:
                for phase in phases:
                    queues: dict[str, list[tuple[float, Delivery]]] = {}
                    phase_start, offered = time.monotonic(), 0
                    for delivery in phase:
                        due = phase_start + offered / self.rate if self.rate else phase_start
                        offered += max(1, len(delivery.facts))
                        queues.setdefault(self._worker_of(delivery), []).append((due, delivery))
                    async with asyncio.TaskGroup() as group:
                        for name, queue in queues.items():
                            group.create_task(self._work(name, queue, client))
                    if self.report.stopped:
                        break
            finally:
                ticker.cancel()
        self.report.finished_at = time.time()
        self._report_progress(len(todo), total_events, start)
        return self.report

    async def _tick(self, inputs_total: int, events_total: int, start: float) -> None:
        while True:
            await asyncio.sleep(self.progress_every_s)
            self._report_progress(inputs_total, events_total, start)

    def _report_progress(self, inputs_total: int, events_total: int, start: float) -> None:
        if self.progress is not None:
            self.progress(
                Progress(
                    inputs_done=len(self.report.sent),
                    inputs_total=inputs_total,
                    events_done=self._events_done,
                    events_total=events_total,
                    answers=Counter(self._answers),
                    elapsed_s=time.monotonic() - start,
                )
            )

    async def _work(
        self, name: str, queue: list[tuple[float, Delivery]], client: httpx.AsyncClient
    ) -> None:
        mllp: MllpClient | None = None
        if name.startswith("siu"):
            mllp = MllpClient(*self.endpoints.scheduling_mllp)
        elif name.startswith("dft"):
            mllp = MllpClient(*self.endpoints.billing_mllp)
        try:
            for due, delivery in queue:
                if self.should_stop():
                    self.report.stopped = True
                    return
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent_at = time.time()
                answer = await self._send(delivery, mllp, client)
                self.report.sent.append(Sent(delivery, answer, sent_at, time.time()))
                self._answers[answer] += 1
                self._events_done += len(delivery.facts)
        finally:
            if mllp is not None:
                await mllp.close()

    async def _send(
        self, delivery: Delivery, mllp: MllpClient | None, client: httpx.AsyncClient
    ) -> str:
        if delivery.channel in (SIU, DFT):
            assert mllp is not None
            return await mllp.send(delivery.payload)
        if delivery.channel == FHIR:
            url = self.endpoints.scheduling_http + delivery.path
            return _fhir_answer((await _http(client, delivery, url)).status_code)
        if delivery.channel == X12_UPLOAD or (
            delivery.channel == X12_INBOX and self.endpoints.inbox_dir is None
        ):
            upload = Delivery(
                seq=delivery.seq, at=delivery.at, channel=delivery.channel, lane=delivery.lane,
                payload=delivery.payload, method="POST",
                headers={"Content-Type": "application/edi-x12"}, label=delivery.label,
            )  # fmt: skip
            url = self.endpoints.billing_http + "/v1/remittances"
            return _upload_answer((await _http(client, upload, url)).status_code)
        if delivery.channel == X12_INBOX:
            return await self._drop_in_inbox(delivery)
        if delivery.channel == CSV:
            return await self._import_csv(delivery)
        raise PlayError(f"unknown channel {delivery.channel}")

    async def _drop_in_inbox(self, delivery: Delivery, timeout_s: float = 120.0) -> str:
        inbox = self.endpoints.inbox_dir
        assert inbox is not None
        name = delivery.label
        temporary = inbox / f".{name}.part"
        temporary.write_bytes(delivery.payload)
        temporary.rename(inbox / name)  # the inbox ignores dot names: never read half-written
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (inbox / "rejected" / f"{name}.reason").exists():
                return "rejected"
            if not (inbox / name).exists() and (inbox / "done" / name).exists():
                return "posted"
            await asyncio.sleep(0.1)
        raise PlayError(f"{name} was not taken from the inbox within {timeout_s:.0f}s")

    async def _import_csv(self, delivery: Delivery) -> str:
        path = self.workdir / f"{self.scenario.config.run_tag}-appointments.csv"
        path.write_bytes(delivery.payload)
        command = Path(sys.executable).with_name("carebus-scheduling")
        env = {
            **os.environ,
            "NATS_URL": self.endpoints.nats_url,
            "DATABASE_URL": self.endpoints.database_url,
        }
        process = await asyncio.create_subprocess_exec(
            *self.import_prefix, str(command), "import", str(path),
            "--rejects", str(path.with_suffix(".rejects.csv")),
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            output, _ = await asyncio.wait_for(process.communicate(), 300)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        if process.returncode != 0:
            return f"import exit {process.returncode}: {output.decode(errors='replace')[-300:]}"
        return "imported"
