"""`carebus run` (what `make run` calls): the whole suite on this machine.

Starts the devstack (unless NATS_URL / DATABASE_URL are set), provisions, starts every
service as its own process, waits until each is ready and prints where it listens.
Ctrl-C (or SIGTERM) stops the services first (SIGTERM, then SIGKILL after the grace period),
then PostgreSQL and NATS; data stays under the data folder for the next run.

Once everything is ready it plays the demo scenario (a day of a 40-site network, from the
optional `carebus-scenario` package) at a gentle rate and prints a summary;
``CAREBUS_DEMO=0`` turns it off. With the demo on, the demo's mock billing and scheduling
systems start first and the outbound service delivers to them; with it off, the outbound
feeds keep their own settings (off unless configured).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Protocol

from carebus_shared import crypto
from carebus_shared.auth.client import API_KEY_ENV
from carebus_shared.cli.devstack import Endpoints, devstack
from carebus_shared.cli.local_keys import ensure_data_key, ensure_local_keys
from carebus_shared.cli.provision import provision_all
from carebus_shared.cli.services import ServiceEntry, discover
from carebus_shared.jetstream.server_config import redacted

READY_TIMEOUT_S = 90.0
Processes = dict[str, subprocess.Popen[bytes]]
STOP_GRACE_S = 30.0


class _Stop(Exception):
    pass


class _Demo(Protocol):
    def stop(self, timeout_s: float = ...) -> None: ...


_OUTBOUND = "outbound"


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    # Only the first signal interrupts; a second Ctrl-C must not cut the orderly stop short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Stop


def _is_ready(service: ServiceEntry) -> bool:
    settings = service.settings()
    url = f"http://{settings.http_host}:{settings.http_port}/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _stop_all(processes: Processes) -> None:
    for process in reversed(processes.values()):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for name, process in processes.items():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop within {STOP_GRACE_S:.0f}s; killing it", flush=True)
            process.kill()
            process.wait(timeout=5)


def run_suite(data_dir: Path) -> int:
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    try:
        with devstack(data_dir) as endpoints:
            print(f"nats {redacted(endpoints.nats_url)}", flush=True)
            print(f"postgres {redacted(endpoints.database_url)}", flush=True)
            lines = asyncio.run(
                provision_all(
                    endpoints.nats_url,
                    endpoints.database_url,
                    passwords=endpoints.role_passwords or None,
                )
            )
            for line in lines:
                print(f"  {line}", flush=True)
            keys = asyncio.run(ensure_local_keys(endpoints.database_url, data_dir))
            print(f"API keys (mode 0600): {keys['admin'].parent}/<client>.key", flush=True)
            print(f"  admin key: {keys['admin']}  (the carebus commands use it)", flush=True)
            env = {
                **os.environ,
                "NATS_URL": endpoints.nats_url,
                "DATABASE_URL": endpoints.database_url,
                "CAREBUS_OPS_CONSOLE_SERVICE_KEY": keys["ops-console"].read_text().strip(),
                crypto.KEY_FILE_ENV: str(ensure_data_key(data_dir)),
            }
            os.environ[API_KEY_ENV] = keys["demo"].read_text().strip()  # the demo's calls
            _run_services(data_dir, env, endpoints)
    except _Stop:
        pass  # raised before the services started; the devstack has stopped already
    print("stopped; data kept under", data_dir, flush=True)
    return 0


def _run_services(data_dir: Path, env: dict[str, str], endpoints: Endpoints) -> None:
    """Start every service, watch them, and stop them all before the devstack stops."""
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    services = discover()
    processes: Processes = {}
    demo: _Demo | None = None
    receivers, outbound_env = _prepare_receivers()
    try:
        for service in services:
            log = (logs / f"{service.name}.log").open("ab")
            processes[service.name] = subprocess.Popen(
                service.command(sys.executable),
                # Each service connects as its own NATS user and its own database role.
                env={
                    **env,
                    "NATS_URL": endpoints.nats_url_for(service.name),
                    "DATABASE_URL": endpoints.database_url_for(service.schema),
                    **(outbound_env if service.name == _OUTBOUND else {}),
                },
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us; we stop them in order
            )
        _wait_ready(services, processes)
        print(f"\ncarebus is up. Logs: {logs}/<service>.log; `carebus status` for backlogs.")
        print("Each HTTP listener serves /health/live, /health/ready, /metrics and /schema.")
        for service in services:
            for line in service.listeners():
                print(line, flush=True)
        print("Ctrl-C stops everything.", flush=True)
        demo = _start_demo(services, env, data_dir, receivers)
        _watch(processes)
    except _Stop:
        print("\nstopping…", flush=True)
    finally:
        if demo is not None:
            demo.stop()  # before the services go: it must not mistake the stop for a failure
        _stop_all(processes)
        if receivers is not None:
            receivers.stop()  # after the outbound service: it must not see them vanish


def _demo_wanted() -> bool:
    return os.environ.get("CAREBUS_DEMO", "1") != "0"


def _prepare_receivers() -> tuple[_Demo | None, dict[str, str]]:
    """The demo's mock receivers and the outbound settings pointing at them, before the
    services start; nothing (outbound keeps its own settings) with the demo off."""
    if not _demo_wanted():
        return None, {}
    try:
        from carebus_scenario.demo import prepare_receivers
    except ImportError:
        return None, {}
    try:
        receivers, outbound_env = prepare_receivers()
    except Exception as exc:  # the suite runs on; its outbound feeds stay as configured
        print(f"demo receivers skipped: {type(exc).__name__}: {exc}", flush=True)
        return None, {}
    print("demo: mock billing and scheduling systems on loopback; outbound delivers to them")
    return receivers, outbound_env


def _start_demo(
    services: list[ServiceEntry], env: dict[str, str], data_dir: Path, receivers: _Demo | None
) -> _Demo | None:
    """The scenario demo, when wanted and installed (shared does not depend on it)."""
    if not _demo_wanted():
        print("demo off (CAREBUS_DEMO=0).", flush=True)
        return None
    try:
        from carebus_scenario.demo import start_demo
    except ImportError:
        print("demo skipped: carebus-scenario is not installed (pip install -e scenario).")
        return None
    try:
        return start_demo(
            services,
            env["NATS_URL"],
            env["DATABASE_URL"],
            data_dir,
            receivers,  # type: ignore[arg-type]  # what prepare_receivers returned
        )
    except Exception as exc:  # the suite runs on without its demo
        print(f"demo skipped: {type(exc).__name__}: {exc}", flush=True)
        return None


def _wait_ready(services: list[ServiceEntry], processes: Processes) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    waiting = list(services)
    while waiting and time.monotonic() < deadline:
        for service in list(waiting):
            code = processes[service.name].poll()
            if code is not None:
                raise SystemExit(f"{service.name} exited with {code} during start-up; see its log")
            if _is_ready(service):
                waiting.remove(service)
        time.sleep(0.3)
    if waiting:
        names = ", ".join(s.name for s in waiting)
        print(f"warning: not ready after {READY_TIMEOUT_S:.0f}s: {names}", flush=True)


def _watch(processes: Processes) -> None:
    """Wait for Ctrl-C; report any service that exits on its own."""
    reported: set[str] = set()
    while True:
        for name, process in processes.items():
            if process.poll() is not None and name not in reported:
                print(f"{name} exited with {process.returncode}; see its log", flush=True)
                reported.add(name)
        time.sleep(1.0)
