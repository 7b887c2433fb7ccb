"""The `make run` demo: once the suite is up, play a day of the network at a gentle rate,
print progress, then a summary (inputs, journals, exceptions by reason and site, the trial
balance per site, whether the ledger equals the oracle, and where to look next).

It runs in a thread of the `carebus run` supervisor, which stays in charge of Ctrl-C: the
supervisor calls ``stop()`` (the demo's task is cancelled, its CSV import child killed) and
then stops the services. Each run plays a new day (new seed and ids) over the same network,
so the summary compares what *this* run posted (``posted_at`` since it started) to the oracle.

`carebus run` starts the demo's mock receivers (``prepare_receivers``) before the services,
so the outbound service is configured to deliver to them: a billing system (MLLP and FHIR,
``FHIR_SITES`` by FHIR, the rest by HL7), a status webhook, and two scheduling systems
subscribed to master data. The summary then says what each took, against the oracle.

Environment: ``CAREBUS_DEMO_RATE`` (events/s, default 40), ``CAREBUS_DEMO_SITES`` (40),
``CAREBUS_DEMO_APPOINTMENTS`` (visits per site, default 8).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from carebus_scenario.charge_watch import check_completed_without_charge
from carebus_scenario.config import ScenarioConfig
from carebus_scenario.endpoints import Endpoints
from carebus_scenario.generator import generate
from carebus_scenario.observe import observe, wait_quiet
from carebus_scenario.oracle import expect
from carebus_scenario.outbound_check import check_outbound, snapshot
from carebus_scenario.player import Player, Progress, load_masterdata
from carebus_scenario.receivers import BackgroundReceivers, Receivers, outbound_env
from carebus_scenario.summary import print_scenario, print_summary
from carebus_scenario.verify import differences
from carebus_shared.cli.services import ServiceEntry

Print = Callable[[str], None]
# The demo network's sites whose billing system takes completions as FHIR Encounters.
FHIR_SITES = ("SITE02", "SITE05", "SITE07")


def _say(text: str) -> None:
    print(text, flush=True)


def demo_config(remittance_site: str, now: dt.datetime | None = None) -> ScenarioConfig:
    now = now or dt.datetime.now(dt.UTC)
    seed = int(now.timestamp())
    return ScenarioConfig(
        seed=seed,
        sites=int(os.environ.get("CAREBUS_DEMO_SITES", "40")),
        appointments_per_site=int(os.environ.get("CAREBUS_DEMO_APPOINTMENTS", "8")),
        day=now.date(),
        remittance_site=remittance_site,
        tag=f"D{seed % 10**7:07d}",
    )


class Demo:
    def __init__(
        self,
        endpoints: Endpoints,
        workdir: Path,
        out: Print = _say,
        receivers: BackgroundReceivers | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.receivers = receivers
        self.workdir = workdir
        self.out = out
        self.rate = float(os.environ.get("CAREBUS_DEMO_RATE", "40"))
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, name="carebus-demo", daemon=True)

    def start(self) -> Demo:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        if self._loop is not None and self._task is not None:
            with contextlib.suppress(RuntimeError):  # the loop has finished already
                self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            asyncio.run(self._main_task())
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # the demo must never take the suite down
            if not self._stopping.is_set():
                self.out(f"demo: stopped early: {type(exc).__name__}: {exc}")

    async def _main_task(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        await self.main()

    def _progress(self, progress: Progress) -> None:
        answers = ", ".join(f"{a} {n:,}" for a, n in sorted(progress.answers.items()))
        self.out(
            f"demo: {progress.events_done:,}/{progress.events_total:,} events sent "
            f"({progress.inputs_done:,}/{progress.inputs_total:,} inputs: {answers})"
        )

    async def main(self) -> None:
        started = dt.datetime.now(dt.UTC)
        self.out("")
        self.out(f"demo: playing a day of the network at {self.rate:g} events/s "
                 "(CAREBUS_DEMO=0 turns this off)")  # fmt: skip
        await play_and_check(
            self.endpoints,
            demo_config(self.endpoints.remittance_site, started),
            self.workdir,
            rate=self.rate,
            out=self.out,
            should_stop=self._stopping.is_set,
            progress=self._progress,
            receivers=self.receivers.receivers if self.receivers is not None else None,
        )


async def play_and_check(
    endpoints: Endpoints,
    config: ScenarioConfig,
    workdir: Path,
    *,
    rate: float | None,
    out: Print = _say,
    should_stop: Callable[[], bool] = lambda: False,
    progress: Callable[[Progress], None] | None = None,
    receivers: Receivers | None = None,
) -> list[str] | None:
    """Load the network, play its day into the running suite, wait until the pipeline is
    quiet and compare what this play posted with the oracle; print a summary. Returns the
    differences (empty: the ledger equals the oracle), None when stopped early. With
    ``receivers``, also whether every outbound message reached them once."""
    started = dt.datetime.now(dt.UTC)
    before = snapshot(receivers) if receivers is not None else {}
    scenario = generate(config)
    expected = expect(scenario)
    print_scenario(scenario, expected, out)
    await load_masterdata(scenario.network, endpoints.validator_http)
    out("master data loaded through the validator's import API")
    player = Player(
        scenario,
        endpoints,
        workdir,
        rate=rate,
        connections=4 if rate else 16,
        progress=progress,
        progress_every_s=5.0,
        should_stop=should_stop,
    )
    report = await player.play()
    if report.stopped:
        return None
    out("every input answered; waiting for the pipeline to go quiet…")
    waited = time.monotonic()
    await wait_quiet(endpoints.nats_url, endpoints.database_url, timeout_s=600, since=started)
    out(f"quiet after {time.monotonic() - waited:,.1f} s")
    observed = await observe(
        endpoints.database_url, endpoints.validator_http, endpoints.nats_url, since=started
    )
    problems = differences(expected, observed, check_streams=False)
    print_summary(
        scenario, expected, report, observed, problems, endpoints, out,
        logs=str(workdir.parent / "logs"),
    )  # fmt: skip
    # Revenue integrity (docs/decisions/025): the visits whose charges never came.
    problems += await check_completed_without_charge(
        endpoints.database_url, endpoints.console_http, scenario, out
    )
    if receivers is not None:
        problems += await check_outbound(
            receivers, expected, FHIR_SITES, endpoints.nats_url, started, before, out
        )
    return problems


def prepare_receivers() -> tuple[BackgroundReceivers, dict[str, str]]:
    """The demo's mock receivers, up, and the outbound service's settings pointing at them
    (`carebus run` calls this before it starts the services; ``stop()`` after)."""
    receivers = BackgroundReceivers().start()
    return receivers, outbound_env(receivers.receivers, FHIR_SITES)


def start_demo(
    services: list[ServiceEntry],
    nats_url: str,
    database_url: str,
    data_dir: Path,
    receivers: BackgroundReceivers | None = None,
) -> Demo:
    """Start the demo in the background; the caller calls ``stop()`` before it stops the
    services."""
    endpoints = Endpoints.from_services(services, nats_url, database_url)
    return Demo(endpoints, data_dir / "demo", receivers=receivers).start()
