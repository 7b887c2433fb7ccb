"""One fault, one run: a fresh stack, a day played into it, the fault injected while it
flows, the pipeline drained, and every event classified by the independent checker.

Each run has its own NATS server and its own database (its own PostgreSQL server when the
fault is PostgreSQL's), so what it holds is exactly what its day put there. Stage consumers'
ack deadlines are shortened to ``ACK_WAIT_S`` (production: 30 s) so that what a dead or
stopped consumer held comes back within a short run; everything else is the production
topology and the services' own code (faults go through ``tests.chaos.service``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncpg
import nats
import psutil

from carebus_scenario.checker import Erp, Verdict, classify, observe_all
from carebus_scenario.config import ScenarioConfig
from carebus_scenario.generator import Scenario, generate
from carebus_scenario.model import SCHEDULING, Delivery
from carebus_scenario.observe import backlog, wait_quiet
from carebus_scenario.oracle import Expectation, expect
from carebus_scenario.player import Player, PlayReport, load_masterdata
from carebus_scenario.stack import ServiceStack, fresh_database, provision_stack
from carebus_shared.cli.services import ORDER as SERVICES
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.devstack.postgres_server import PostgresServer
from carebus_shared.jetstream.topology import (
    ERP_POSTER,
    MAPPER,
    TOPOLOGY,
    VALIDATOR_BILLING,
    VALIDATOR_SCHEDULING,
    Topology,
)
from tests.chaos.faults import ADAPTERS, Fault
from tests.chaos.lag import LagWatch
from tests.chaos.service import ACTION_ENV, AT_ENV, MODULE, POINT_ENV, UNSAFE_ENV
from tests.support import auth
from tests.support.erp_poster import Sandbox, drop_database, eventually

REPO = Path(__file__).resolve().parents[2]
ACK_WAIT_S = 4.0
STAGES = (VALIDATOR_SCHEDULING, VALIDATOR_BILLING, MAPPER, ERP_POSTER)
# The poster's retry budget in the ERP outage: deliveries, and how long each waits for the ERP.
ERP_DELIVERIES = 3
RUN_TIMEOUT_S = 240.0
WAIT_S = 120.0  # for one step of a run to come


@dataclass
class FaultResult:
    fault: str
    unsafe: str
    scenario: str
    events: int = 0
    ok: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    dead_lettered: int = 0
    expected_dead_letters: int = 0
    redriven: int = 0
    outage_s: float = 0.0
    catch_up_s: float | None = None  # the pipeline's backlog back to before the fault
    sender_catch_up_s: float | None = None  # the sender's lag back to before the fault
    triggered: bool = False
    wall_s: float = 0.0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def take(self, verdict: Verdict) -> None:
        self.events = verdict.events
        self.ok, self.lost = verdict["ok"], verdict["lost"]
        self.duplicated, self.unexpected = verdict["duplicated"], verdict["unexpected"]
        self.dead_lettered = max(self.dead_lettered, verdict["dead_lettered"])
        self.problems = verdict.problems()

    def failures(self) -> list[str]:
        """Why this run misses its target (empty: it meets it)."""
        if not self.triggered:
            return ["the fault was not triggered: nothing was tested"]
        if self.unsafe:
            if self.lost + self.duplicated == 0:
                return [f"unsafe setting {self.unsafe}: the checker caught no loss or double post"]
            return []
        found = [
            f"{n} {what}"
            for n, what in (
                (self.lost, "lost"),
                (self.duplicated, "duplicated"),
                (self.unexpected, "unexpected"),
            )
            if n
        ]
        if self.dead_lettered != self.expected_dead_letters + self.redriven:
            found.append(
                f"{self.dead_lettered} dead-lettered, expected "
                f"{self.expected_dead_letters + self.redriven}"
            )
        if self.events != self.ok + self.expected_dead_letters:
            found.append(f"only {self.ok} of {self.events} events ok at the end")
        if self.outage_s and (self.catch_up_s is None or self.catch_up_s > 2 * self.outage_s):
            found.append(f"catch-up {self.catch_up_s} s over twice the outage ({self.outage_s} s)")
        return found


def _topology(fault: Fault) -> Topology:
    consumers = []
    for spec in TOPOLOGY.consumers:
        if spec.stage in STAGES:
            spec = replace(spec, backoff_s=(ACK_WAIT_S, 2 * ACK_WAIT_S, 4 * ACK_WAIT_S, 60.0))
        if spec.durable == ERP_POSTER and fault.kind == "erp_outage":
            spec = replace(spec, backoff_s=(ACK_WAIT_S, 1.0, 1.0), max_deliver=ERP_DELIVERIES)
        consumers.append(spec)
    return replace(TOPOLOGY, consumers=tuple(consumers))


def _repo_on_path() -> str:
    return os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)


class ChaosStack(ServiceStack):
    """The five services; the fault's victim (and its replicas) run through the test-only
    entry point with the fault's environment."""

    def __init__(self, *args: Any, chaos: dict[str, dict[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.chaos = chaos

    def command(self, name: str) -> tuple[list[str], dict[str, str]]:
        service = name.split("~")[0]
        if service not in self.chaos:
            return super().command(name)
        chaos = self.chaos[service]
        if name != service:  # a replica: the crash point is the victim's alone
            chaos = {k: v for k, v in chaos.items() if k not in (POINT_ENV, AT_ENV, ACTION_ENV)}
        env = {**self.env[name], **chaos, "PYTHONPATH": _repo_on_path()}
        return [sys.executable, "-m", MODULE, service, "serve"], env

    def disarm(self, service: str) -> None:
        """Later starts of ``service`` run without the crash point (an unsafe setting stays)."""
        if service in self.chaos:
            self.chaos[service] = {k: v for k, v in self.chaos[service].items() if k != POINT_ENV}

    def alive(self, name: str) -> bool:
        return self.processes[name].poll() is None

    def stopped(self, name: str) -> bool:
        try:
            return bool(psutil.Process(self.pid(name)).status() == psutil.STATUS_STOPPED)
        except psutil.Error:
            return False


class Operator(Player):
    """The player, with an operator who runs the CSV import again when it stopped for want
    of NATS or PostgreSQL (exit 3: "run it again", says the scheduling adapter's README)."""

    async def _import_csv(self, delivery: Delivery) -> str:
        answer = ""
        for _ in range(20):  # bounded: about a minute
            answer = await super()._import_csv(delivery)
            if not answer.startswith("import exit 3"):
                return answer
            await asyncio.sleep(3.0)
        return answer


def crash_at(fault: Fault, scenario: Scenario) -> int:
    """Which arrival at the crash point kills: the fault's own, or a third of the way through
    the inputs the victim adapter publishes (stages: the fifth batch)."""
    if fault.at is not None:
        return fault.at
    if fault.service == "scheduling-adapter":
        channels = {"siu", "fhir"}
    elif fault.service == "billing-adapter":
        channels = {"dft", "835-upload", "835-inbox"}
    else:
        return 5
    inputs = sum(1 for d in scenario.deliveries if d.channel in channels and d.refusal is None)
    return max(1, inputs // 3)


class Run:
    """The servers, the stack and the day of one fault's run."""

    def __init__(self, fault: Fault, workdir: Path, server_dsn: str) -> None:
        self.fault = fault
        self.workdir = workdir
        self.server_dsn = server_dsn
        self.scenario = generate(fault.config)
        self.expected: Expectation = expect(self.scenario)
        self.nats = NatsServer(workdir / "nats")
        self.pg: PostgresServer | None = None
        self.pg_dir = workdir / "pg"
        self.database_url = ""
        self.sandbox: Sandbox | None = None
        self.stack: ChaosStack | None = None
        self.result = FaultResult(fault.name, fault.unsafe, _describe(fault.config))
        self.report: PlayReport | None = None
        self.play_ended = 0.0
        self.lag = LagWatch(self.nats.url, fault.rate)
        # When the fault began and ended (monotonic); None: not (yet) triggered, or no
        # moment before it to compare with (a backlog built on purpose).
        self.fault_began: float | None = None
        self.fault_ended: float | None = None
        # Whether the run's lag just before the fault is what it must get back to (False
        # when the backlog was built on purpose: then back to nothing queued).
        self.compare_before = True

    # -- set-up and tear-down ------------------------------------------------------------
    async def __aenter__(self) -> Run:
        try:
            await self._set_up()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def _set_up(self) -> None:
        await asyncio.to_thread(self.nats.start)
        if self.fault.kind == "postgres":
            # Not below pytest's temporary folder: another session starting resets its
            # root to 0700, and PostgreSQL runs as a user of its own under root.
            self.pg_dir = Path(tempfile.mkdtemp(prefix="carebus-chaos-pg-"))
            self.pg = PostgresServer(self.pg_dir, durable=True)
            await asyncio.to_thread(self.pg.start)
            self.database_url = await fresh_database(self.pg.dsn, "chaos")
            await auth.grant(self.database_url)  # a server of its own: not from the template
        else:
            name = f"chaos_{uuid.uuid4().hex[:10]}"
            self.database_url = await fresh_database(self.server_dsn, name)
        await provision_stack(self.nats.url, self.database_url, _topology(self.fault))
        await self.lag.start()
        extra = {"erp-poster": {"CAREBUS_ERP_POSTER_ACK_KEEPALIVE_S": "1"}}
        if self.fault.connector == "http":
            self.sandbox = Sandbox(
                self.database_url, self.workdir / "sandbox.log", rate_limit=0, confirm_delay_s=0
            )
            await self.sandbox.start()
            extra["erp-poster"] |= _http_poster(self.sandbox.url, self.fault.kind == "erp_outage")
        chaos: dict[str, dict[str, str]] = {}
        if self.fault.service:
            chaos[self.fault.service] = self._crash_env()
        if self.fault.unsafe:
            if not (self.fault.unsafe_in or self.fault.service):
                raise ValueError(f"{self.fault.name}: which services take {self.fault.unsafe}?")
            for service in self.fault.unsafe_in or (self.fault.service,):
                chaos.setdefault(service, {})[UNSAFE_ENV] = self.fault.unsafe
        quick_stop = {"CAREBUS_SHUTDOWN_GRACE_S": "5"}
        self.stack = ChaosStack(
            self.nats.url,
            self.database_url,
            self.workdir,
            remittance_site=self.fault.config.remittance_site,
            extra_env={n: {**quick_stop, **extra.get(n, {})} for n in SERVICES},
            chaos=chaos,
        )
        for _ in range(self.fault.replicas - 1):
            self.stack.add_replica(self.fault.service)

    def _crash_env(self) -> dict[str, str]:
        fault = self.fault
        if not fault.point:
            return {}
        return {
            POINT_ENV: fault.point,
            AT_ENV: str(crash_at(fault, self.scenario)),
            ACTION_ENV: "kill" if fault.kind == "crash" else "stop",
        }

    async def __aexit__(self, *exc: object) -> None:
        await self.lag.stop()
        if self.stack is not None:
            for name in self.stack.processes:
                if self.stack.alive(name):  # a stopped one must go on to stop
                    os.kill(self.stack.pid(name), signal.SIGCONT)
            await asyncio.to_thread(self.stack.stop)
        if self.sandbox is not None:
            self.sandbox.stop()
        await asyncio.to_thread(self.nats.stop, True)
        if self.pg is not None:
            await asyncio.to_thread(self.pg.stop)
            shutil.rmtree(self.pg_dir, ignore_errors=True)
        elif self.database_url:
            await drop_database(self.server_dsn, self.database_url)

    # -- the day -----------------------------------------------------------------------------
    @property
    def services(self) -> ChaosStack:
        assert self.stack is not None
        return self.stack

    async def start(self, names: list[str] | None = None) -> None:
        await asyncio.to_thread(self.services.start, names)

    async def load(self) -> None:
        await load_masterdata(self.scenario.network, self.services.endpoints.validator_http)

    def play(self, rate: float | None = None) -> asyncio.Task[PlayReport]:
        self.lag.rate = rate
        player = Operator(
            self.scenario, self.services.endpoints, self.workdir / "play", rate=rate,
            progress=self.lag.progress, progress_every_s=0.2,
        )  # fmt: skip

        async def played() -> PlayReport:
            self.report = await player.play()
            self.play_ended = time.monotonic()
            return self.report

        return asyncio.create_task(played())

    async def posted(self) -> int:
        """Journals in the ERP so far (the ledger, or the sandbox's)."""
        table = (
            "carebus_erp_sandbox.journal" if self.sandbox else "carebus_erp_poster.journal_entry"
        )
        conn = await asyncpg.connect(self.database_url)
        try:
            return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
        finally:
            await conn.close()

    async def first_posted(self) -> bool:
        return await self.posted() >= 1

    async def a_quarter_posted(self) -> bool:
        return await self.posted() >= max(1, self.expected.journal_count // 4)

    async def idle(self, play: asyncio.Task[PlayReport]) -> bool:
        """The day is played and every consumer is done with it."""
        return play.done() and not any((await backlog(self.nats.url)).values())

    async def finish(self, extra_dead_letters: list[str] | None = None) -> None:
        """Drain (a pipeline that does not drain is noted, and classified all the same)."""
        try:
            await self.drained()
        except TimeoutError as exc:
            self.result.notes.append(str(exc))
        self.note_surprises()
        await self.classify(extra_dead_letters)

    async def drained(self, timeout_s: float = RUN_TIMEOUT_S) -> None:
        """Wait until the pipeline is quiet; the catch-up is the time from the fault's end
        until its backlog was back to what it was before (lag.py), at the latest until quiet;
        the sender's catch-up likewise from the sender's lag."""
        began = time.monotonic()
        waited = await wait_quiet(self.nats.url, self.database_url, timeout_s=timeout_s)
        quiet_at = began + waited - 1.5  # wait_quiet's settle time
        end = self.fault_ended or self.play_ended
        before = self.fault_began if self.compare_before else None
        pipeline = self.lag.caught_up(before, end) or quiet_at
        self.result.catch_up_s = round(max(0.0, min(pipeline, quiet_at) - end), 1)
        sender = self.lag.caught_up(before, end, sender=True) or quiet_at
        self.result.sender_catch_up_s = round(max(0.0, min(sender, quiet_at) - end), 1)

    def mark_fault(self, began: float, ended: float) -> None:
        self.fault_began, self.fault_ended = began, ended
        self.result.outage_s = round(ended - began, 1)

    async def classify(self, extra_dead_letters: list[str] | None = None) -> Verdict:
        erp: Erp = "sandbox" if self.sandbox else "ledger"
        observed = await observe_all(self.database_url, self.nats.url, erp)
        verdict = classify(
            self.scenario, self.expected, observed, extra_dead_letters=extra_dead_letters or []
        )
        self.result.take(verdict)
        return verdict

    def note_surprises(self) -> None:
        if self.report is not None and self.report.surprises:
            self.result.notes.append(
                f"{len(self.report.surprises)} answers differed from the scenario's "
                f"(e.g. {self.report.surprises[0]})"
            )

    # -- the fault ---------------------------------------------------------------------------
    async def redrive_dead_letters(self) -> int:
        """`carebus exceptions redrive` for every open dead letter; returns how many."""
        conn = await asyncpg.connect(self.database_url)
        try:
            ids = [
                int(r["id"])
                for r in await conn.fetch(
                    "SELECT id FROM carebus_exceptions.exception_record WHERE status = 'open' "
                    "AND (category = 'transport' OR reason LIKE '%deliveries_exhausted')"
                )
            ]
        finally:
            await conn.close()
        env = {**os.environ, "NATS_URL": self.nats.url, "DATABASE_URL": self.database_url}
        carebus = str(Path(sys.executable).with_name("carebus"))
        for record_id in ids:
            done = await asyncio.to_thread(
                subprocess.run,
                [carebus, "exceptions", "redrive", str(record_id)],
                env=env, capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            if done.returncode != 0 or "re-driven" not in done.stdout:
                raise RuntimeError(f"redrive {record_id}: {done.stdout} {done.stderr}")
        return len(ids)

    async def publish_poison(self, count: int, play: asyncio.Task[PlayReport]) -> list[str]:
        """``count`` appointment events the validator cannot store (a NUL in the provider
        code, which it must park), straight into SCHEDULING past the adapter's checks,
        spread through the day's events. Returns their event ids."""
        target = self.expected.stream_events[SCHEDULING]
        nc = await nats.connect(self.nats.url)
        ids = []
        try:
            js = nc.jetstream()
            for n in range(1, count + 1):

                async def far_enough(n: int = n) -> bool:
                    state = (await js.stream_info(SCHEDULING)).state
                    return bool(play.done() or state.messages >= n * target // (count + 1))

                await eventually(far_enough, WAIT_S, f"SCHEDULING to fill for poison {n}", 0.1)
                model = await js.get_msg(SCHEDULING, 1)
                event_id = f"poison-{n}"
                data = _poisoned(model.data or b"", event_id, f"PXPOISON{n:03d}")
                headers = {**(model.headers or {}), "Nats-Msg-Id": event_id}
                await js.publish(model.subject or "", data, headers=headers)
                ids.append(event_id)
        finally:
            await nc.close()
        return ids


def _poisoned(model: bytes, event_id: str, appointment_id: str) -> bytes:
    import json

    body = json.loads(model)
    body["event_id"] = body["correlation_id"] = event_id
    body["entity_key"] = body["appointment"]["appointment_id"] = appointment_id
    body["appointment"]["provider_code"] = "NO\u0000SUCH"
    return json.dumps(body).encode()


def _http_poster(url: str, short_budget: bool) -> dict[str, str]:
    env = {
        "CAREBUS_ERP_POSTER_CONNECTOR": "http",
        "CAREBUS_ERP_POSTER_ERP_BASE_URL": url,
        "CAREBUS_ERP_POSTER_CONFIRM_POLL_S": "0.5",
        # The sandbox runs without a rate limit; the poster's own default ceiling (50
        # requests/s) is below the day's rate, and would be its catch-up, not the fault's.
        "CAREBUS_ERP_POSTER_ERP_RATE_LIMIT_PER_S": "500",
    }
    if short_budget:  # the retry budget a short outage outlasts
        env |= {
            "CAREBUS_ERP_POSTER_MAX_DELIVERIES": str(ERP_DELIVERIES),
            "CAREBUS_ERP_POSTER_ERP_HOLD_S": "1",
            "CAREBUS_ERP_POSTER_BREAKER_OPEN_S": "1",
            "CAREBUS_ERP_POSTER_ERP_MAX_ATTEMPTS": "2",
            "CAREBUS_ERP_POSTER_ERP_TIMEOUT_S": "1",
            "CAREBUS_ERP_POSTER_ERP_BACKOFF_MAX_S": "0.2",
        }
    return env


def _describe(config: ScenarioConfig) -> str:
    return f"{config.sites} sites x {config.appointments_per_site} visits"


@contextlib.asynccontextmanager
async def timed(result: FaultResult) -> AsyncIterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        result.wall_s = round(time.monotonic() - started, 1)


# -- the choreographies: one per kind of fault --------------------------------------------------
async def _played(play: asyncio.Task[PlayReport]) -> None:
    async with asyncio.timeout(RUN_TIMEOUT_S):
        await play


async def crash(run: Run) -> None:
    """The victim kills itself at its crash point while the day flows; it is started again
    (without the crash point) at once. A stage's outage lasts until the batch it held can
    come back: its restart, or the ack deadline, whichever is later (JetStream redelivers
    nothing sooner, however fast the restart)."""
    victim = run.fault.service
    await run.start()
    await run.load()
    play = run.play(run.fault.rate)

    async def died() -> bool:
        return not run.services.alive(victim) or await run.idle(play)

    await eventually(died, RUN_TIMEOUT_S, f"{victim} to reach {run.fault.point}", 0.1)
    if not run.services.alive(victim):
        run.result.triggered = True
        down = time.monotonic()
        run.services.disarm(victim)
        await run.start([victim])
        back = time.monotonic()
        if victim not in ADAPTERS:  # what it held comes back at its ack deadline, not before
            back = max(back, down + ACK_WAIT_S)
        run.mark_fault(down, back)
    await _played(play)
    await run.finish()


async def stop(run: Run) -> None:
    """The victim SIGSTOPs itself holding a fetched batch; SIGCONT after ``down_s``, past its
    ack deadline."""
    victim = run.fault.service
    await run.start()
    await run.load()
    play = run.play(run.fault.rate)

    async def stopped() -> bool:
        return run.services.stopped(victim) or await run.idle(play)

    await eventually(stopped, RUN_TIMEOUT_S, f"{victim} to stop at {run.fault.point}", 0.1)
    if run.services.stopped(victim):
        run.result.triggered = True

        async def go_on() -> None:
            os.kill(run.services.pid(victim), signal.SIGCONT)

        await _outage(run, _nothing, go_on)
    await _played(play)
    await run.finish()


async def _nothing() -> None:
    return None


async def _outage(
    run: Run, go: Callable[[], Awaitable[None]], back: Callable[[], Awaitable[None]]
) -> None:
    """``go``, then ``down_s`` later ``back``: the fault's moments are recorded."""
    down = time.monotonic()
    await go()
    await asyncio.sleep(run.fault.down_s)
    await back()
    run.mark_fault(down, time.monotonic())


async def _flowing(run: Run) -> asyncio.Task[PlayReport]:
    """The day being played, once a quarter of its journals are posted (the fault is
    triggered when some are still to come)."""
    await run.start()
    await run.load()
    play = run.play(run.fault.rate)
    await eventually(run.a_quarter_posted, WAIT_S, "a quarter of the journals", 0.1)
    run.result.triggered = await run.posted() < run.expected.journal_count
    return play


async def nats_restart(run: Run) -> None:
    """NATS is SIGKILLed once a quarter of the journals are posted, and restarted (same
    port, same store) after ``down_s``."""
    play = await _flowing(run)

    async def kill() -> None:
        await asyncio.to_thread(run.nats.stop, True)

    async def restart() -> None:
        await asyncio.to_thread(run.nats.start)

    await _outage(run, kill, restart)
    await _played(play)
    await run.finish()


async def _backlog_at_validator(
    run: Run, play_into_backlog: bool = True
) -> asyncio.Task[PlayReport]:
    """The validator stopped once master data is in, the day played into SCHEDULING and
    BILLING, then the validator started: every stage gets full batches at once."""
    run.compare_before = False
    await run.start()
    await run.load()
    await asyncio.to_thread(run.services.terminate, "masterdata-validator")
    return run.play(None if play_into_backlog else run.fault.rate)


async def postgres(run: Run) -> None:
    """PostgreSQL goes and comes back on the same port, with its data.

    A crash (SIGKILL of every process, restarted at once) hits the day as it flows, once a
    quarter of the journals are posted. An outage (a stop for ``down_s``) would outlast the
    player's patience with the inputs an adapter must keep (refusals, 835 files), so the day
    is played first into a backlog at the validator; PostgreSQL goes when the poster stops
    itself holding its first batch (validator and mapper busy with the backlog), and the
    poster goes on into the outage."""
    pg = run.pg
    assert pg is not None

    async def back() -> None:
        await asyncio.to_thread(pg.start)

    if run.fault.crash_pg:
        play = await _flowing(run)

        async def crash() -> None:
            await asyncio.to_thread(pg.crash)

        await _outage(run, crash, back)
        await _played(play)
        await run.finish()
        return
    poster = run.fault.service
    await _played(await _backlog_at_validator(run))
    await run.start(["masterdata-validator"])

    async def holding() -> bool:
        return run.services.stopped(poster) or await run.posted() >= run.expected.journal_count

    await eventually(holding, WAIT_S, f"{poster} to hold its first batch", 0.1)
    run.result.triggered = run.services.stopped(poster)

    async def stop() -> None:
        await asyncio.to_thread(pg.stop)
        os.kill(run.services.pid(poster), signal.SIGCONT)

    await _outage(run, stop, back)
    await run.finish()


async def erp_outage(run: Run) -> None:
    """The ERP sandbox is killed once a quarter of the journals are booked and comes back
    after ``down_s``, past the poster's retry budget: journals end dead-lettered. Then each
    is re-driven with `carebus exceptions redrive` and must post once."""
    sandbox = run.sandbox
    assert sandbox is not None
    play = await _flowing(run)

    async def down() -> None:
        sandbox.stop()

    await _outage(run, down, sandbox.start)
    await _played(play)
    await run.finish()
    run.result.redriven = await run.redrive_dead_letters()
    if run.result.redriven:
        run.result.notes.append(f"{run.result.redriven} dead letters re-driven")
        catch_up = run.result.catch_up_s
        await run.finish()  # the catch-up stays the outage's, not the re-drive's
        run.result.catch_up_s = catch_up


async def poison(run: Run) -> None:
    """Poison events published into SCHEDULING between the day's events while the validator
    is stopped; then it starts on full batches with the poison among them."""
    play = await _backlog_at_validator(run, play_into_backlog=False)
    poison_ids = await run.publish_poison(run.fault.poison, play)
    await _played(play)
    run.result.triggered = bool(poison_ids)
    run.result.expected_dead_letters = 0 if run.fault.unsafe else len(poison_ids)
    began = time.monotonic()
    await run.start(["masterdata-validator"])
    run.mark_fault(began, began)  # no outage: the catch-up is the time to drain the backlog
    await run.finish(poison_ids)


CHOREOGRAPHY: dict[str, Callable[[Run], Awaitable[None]]] = {
    "crash": crash,
    "stop": stop,
    "nats": nats_restart,
    "postgres": postgres,
    "erp_outage": erp_outage,
    "poison": poison,
}


async def run_fault(fault: Fault, workdir: Path, server_dsn: str) -> FaultResult:
    """One run of ``fault``; whatever goes wrong is in the result's notes, not raised.

    Bounded as a whole: a CI run once sat in a short fault for over nine minutes with the
    pipeline drained and no connection of its own open, so a run that outlasts its bound is
    a failure that names where every task waited (not reproduced since: the dump is there
    to say where the next one waits)."""
    run = Run(fault, workdir, server_dsn)
    bound_s = fault.down_s + 2 * RUN_TIMEOUT_S
    watchdog = asyncio.get_running_loop().call_later(bound_s, _dump_tasks, run.result, bound_s)
    async with timed(run.result):
        try:
            async with asyncio.timeout(bound_s), run:
                await CHOREOGRAPHY[fault.kind](run)
        except Exception as exc:  # the run is reported as failed, with the reason
            run.result.notes.append(f"the run failed: {type(exc).__name__}: {exc}")
            run.result.triggered = run.result.triggered and run.result.events > 0
        finally:
            watchdog.cancel()
    return run.result


def _dump_tasks(result: FaultResult, bound_s: float) -> None:
    """Where every task waits, when a run outlasts its bound (then cancelled)."""
    lines = [f"the run outlasted its bound of {bound_s:.0f} s; tasks:"]
    for task in asyncio.all_tasks():
        stack = task.get_stack()
        where = [f"{f.f_code.co_filename}:{f.f_lineno} {f.f_code.co_name}" for f in stack]
        lines.append(f"  {task.get_name()}: {' <- '.join(reversed(where)) or '(no frame)'}")
    text = "\n".join(lines)
    print(text, file=sys.stderr, flush=True)
    result.notes.append(text)
