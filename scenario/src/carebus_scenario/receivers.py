"""Mock receiving systems for the outbound feeds' tests and the `make run` demo, on
loopback: an HL7 v2 MLLP listener and a FHIR HTTP endpoint that accept, refuse, answer
slowly, or are down.

Each recognises a resend the way a real receiver does: by the message's control id (MSH-10,
the Idempotency-Key). A recognised resend is answered as accepted again and counted as a
duplicate, never as a second message; ``accepted`` holds what each took once.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from carebus_shared.devstack.ports import free_port
from carebus_shared.hl7.ack import build_ack
from carebus_shared.hl7.message import parse_message
from carebus_shared.mllp.server import MllpServer

# accept: take it; refuse: AE / HTTP 422; reject: AR; busy: HTTP 503; slow: take it, then
# wait ``delay_s`` before answering (the answer may never reach a sender that died).
MODES = ("accept", "refuse", "reject", "busy", "slow")


@dataclass
class Receiver:
    mode: str = "accept"
    delay_s: float = 3.0
    received: list[str] = field(default_factory=list)  # control ids, every receipt
    accepted: dict[str, bytes] = field(default_factory=dict)  # control id -> first body
    duplicates: int = 0

    def receipts(self) -> Counter[str]:
        return Counter(self.received)

    def _take(self, control_id: str, body: bytes) -> str:
        """What to answer: accepted (new or recognised), or the mode's refusal."""
        self.received.append(control_id)
        if control_id in self.accepted:
            self.duplicates += 1
            return "accept"
        if self.mode in ("refuse", "reject", "busy"):
            return self.mode
        self.accepted[control_id] = body
        return "accept"


class MllpReceiver(Receiver):
    """The billing system's HL7 listener; ``await down()`` / ``await up()`` for outages."""

    def __init__(self) -> None:
        super().__init__()
        self.port = free_port()
        self._server: MllpServer | None = None

    async def _handle(self, payload: bytes) -> bytes:
        message = parse_message(payload)
        msh10 = message.segments[0].value(10) if message.segments else ""
        answer = self._take(str(msh10), payload)
        if answer == "accept" and self.mode == "slow":
            await asyncio.sleep(self.delay_s)
        code = {"accept": "AA", "refuse": "AE", "reject": "AR"}.get(answer, "AR")
        return build_ack(message, code, text="" if code == "AA" else f"mock {answer}")

    async def up(self) -> None:
        self._server = MllpServer(self._handle, port=self.port)
        await self._server.start()

    async def down(self) -> None:
        if self._server is not None:
            await self._server.close(grace=0.5)
            self._server = None


class HttpReceiver(Receiver):
    """An HTTP receiver: the billing system's FHIR endpoint (``{url}/Encounter``) or a
    status webhook (``url`` itself); ``down()`` / ``up()``. Every POST is taken; a resend is
    recognised by its Idempotency-Key."""

    def __init__(self, path: str = "/fhir") -> None:
        super().__init__()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{path}"
        self.event_types: list[str] = []  # Carebus-Event-Type of each accepted post
        self.identifiers: set[str] = set()  # If-None-Exist of each Encounter created
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _answer(self, key: str, if_none_exist: str, body: bytes) -> tuple[int, dict[str, object]]:
        with self._lock:
            answer = self._take(key, body)
            if answer == "accept":
                self.identifiers.add(if_none_exist)
        if answer == "accept":
            if self.mode == "slow":
                time.sleep(self.delay_s)
            return 201, {"resourceType": "Encounter", "id": key}
        if answer == "busy":
            return 503, {}
        outcome: dict[str, object] = {"resourceType": "OperationOutcome",
                   "issue": [{"severity": "error", "code": "invalid",
                              "diagnostics": "mock refusal"}]}  # fmt: skip
        return 422, outcome

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, answer = receiver._answer(
                    self.headers.get("Idempotency-Key", ""),
                    self.headers.get("If-None-Exist", ""),
                    body,
                )
                if status == 201 and self.headers.get("Carebus-Event-Type"):
                    receiver.event_types.append(self.headers["Carebus-Event-Type"])
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_PUT = do_POST  # a FHIR conditional update

            def log_message(self, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(timeout=5)
            self._server = self._thread = None


@dataclass
class Receivers:
    """The billing system (MLLP listener, FHIR endpoint), a status webhook, and two
    scheduling systems subscribed to master data (one HL7, one FHIR)."""

    mllp: MllpReceiver = field(default_factory=MllpReceiver)
    fhir: HttpReceiver = field(default_factory=HttpReceiver)
    webhook: HttpReceiver = field(default_factory=lambda: HttpReceiver("/status"))
    sched_mllp: MllpReceiver = field(default_factory=MllpReceiver)
    sched_fhir: HttpReceiver = field(default_factory=lambda: HttpReceiver("/sched/fhir"))

    async def up(self) -> None:
        await self.mllp.up()
        await self.sched_mllp.up()
        for http in (self.fhir, self.webhook, self.sched_fhir):
            http.up()

    async def down(self) -> None:
        await self.mllp.down()
        await self.sched_mllp.down()
        for http in (self.fhir, self.webhook, self.sched_fhir):
            http.down()


@asynccontextmanager
async def mock_receivers() -> AsyncIterator[Receivers]:
    """Every receiver, down until the test brings it up; down again afterwards."""
    receivers = Receivers()
    try:
        yield receivers
    finally:
        await receivers.down()


def outbound_env(receivers: Receivers, fhir_sites: Iterable[str]) -> dict[str, str]:
    """The outbound service's settings that point every feed at ``receivers``: billing
    readiness over HL7 (MLLP), FHIR for ``fhir_sites``; the status webhook; both
    scheduling systems subscribed to master data."""
    r = receivers
    return {
        "CAREBUS_OUTBOUND_BILLING_CHANNEL": "hl7",
        "CAREBUS_OUTBOUND_BILLING_SITE_CHANNELS": ",".join(f"{s}=fhir" for s in fhir_sites),
        "CAREBUS_OUTBOUND_BILLING_MLLP_HOST": "127.0.0.1",
        "CAREBUS_OUTBOUND_BILLING_MLLP_PORT": str(r.mllp.port),
        "CAREBUS_OUTBOUND_BILLING_FHIR_URL": r.fhir.url,
        "CAREBUS_OUTBOUND_STATUS_WEBHOOK_URL": r.webhook.url,
        "CAREBUS_OUTBOUND_MASTERDATA_SUBSCRIBERS": (
            f"SCHED-HL7=hl7:127.0.0.1:{r.sched_mllp.port},SCHED-FHIR=fhir:{r.sched_fhir.url}"
        ),
    }


class BackgroundReceivers:
    """Every receiver up, on an event loop of its own thread: the demo's billing system
    and scheduling systems, running from before the outbound service starts until
    ``stop()``."""

    START_TIMEOUT_S = 10.0

    def __init__(self) -> None:
        self.receivers = Receivers()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="carebus-demo-receivers", daemon=True
        )

    def start(self) -> BackgroundReceivers:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self.receivers.up(), self._loop)
        future.result(timeout=self.START_TIMEOUT_S)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        if not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self.receivers.down(), self._loop)
        try:
            future.result(timeout=timeout_s)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout_s)
