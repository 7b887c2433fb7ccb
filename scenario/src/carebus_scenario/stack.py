"""The five services as separate processes on free loopback ports, started the way
`carebus run` starts them (``service.command(sys.executable)`` from the discovered entry
points), for the end-to-end test and the pipeline benchmark.

Each stack gets its own database (``fresh_database``) and usually its own NATS server, so
what it holds is exactly what its scenario put there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

import asyncpg

from carebus_scenario.endpoints import Endpoints
from carebus_shared.cli.provision import provision_all
from carebus_shared.cli.services import ServiceEntry, discover
from carebus_shared.devstack.ports import free_port
from carebus_shared.jetstream.topology import TOPOLOGY, Topology

HOST = "127.0.0.1"


def with_ack_wait(topology: Topology, durable: str, backoff_s: tuple[float, ...]) -> Topology:
    """The topology with one consumer's (or a partitioned stage's) redelivery schedule
    changed (its first step is the ack deadline): tests that kill a consumer need not wait
    the production 30 s."""
    consumers = tuple(
        replace(c, backoff_s=backoff_s) if durable in (c.durable, c.stage) else c
        for c in topology.consumers
    )
    return replace(topology, consumers=consumers)


async def fresh_database(server_url: str, name: str) -> str:
    """Create database ``name`` on the server of ``server_url`` (dropped first if it exists);
    returns its URL."""
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    parts = urllib.parse.urlsplit(server_url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


async def provision_stack(
    nats_url: str, database_url: str, topology: Topology = TOPOLOGY, replicas: int = 1
) -> None:
    """What `carebus provision` does, with a topology of the caller's choice (``replicas``:
    every stream's, on a cluster)."""
    await provision_all(nats_url, database_url, replicas, topology=topology)


class ServiceStack:
    def __init__(
        self,
        nats_url: str,
        database_url: str,
        workdir: Path,
        *,
        remittance_site: str = "CBO",
        extra_env: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.nats_url = nats_url
        self.database_url = database_url
        self.workdir = workdir
        self.services: dict[str, ServiceEntry] = {s.name: s for s in discover()}
        self.inbox = workdir / "inbox"
        self.logs = workdir / "logs"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.env: dict[str, dict[str, str]] = {}
        base = {
            "NATS_URL": nats_url,
            "DATABASE_URL": database_url,
            "CAREBUS_LOG_LEVEL": os.environ.get("CAREBUS_LOG_LEVEL", "WARNING"),
        }
        for name, service in self.services.items():
            prefix = service.config.ENV_PREFIX
            env = {**base, f"{prefix}HTTP_HOST": HOST, f"{prefix}HTTP_PORT": str(free_port())}
            if name in ("scheduling-adapter", "billing-adapter"):
                env[f"{prefix}MLLP_HOST"] = HOST
                env[f"{prefix}MLLP_PORT"] = str(free_port())
            if name == "billing-adapter":
                env[f"{prefix}DEFAULT_SITE"] = remittance_site
                env[f"{prefix}INBOX_DIR"] = str(self.inbox)
                env[f"{prefix}INBOX_POLL_S"] = "0.2"
                env[f"{prefix}INBOX_SETTLE_S"] = "0.2"
            env.update((extra_env or {}).get(name, {}))
            self.env[name] = env
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)

    def add_replica(self, name: str, index: int = 2) -> str:
        """Another instance of service ``name`` (``name~index``) on an HTTP port of its own,
        sharing its durables; started with the others. Returns the instance's name."""
        replica = f"{name}~{index}"
        self.services[replica] = self.services[name]
        prefix = self.services[name].config.ENV_PREFIX
        self.env[replica] = {**self.env[name], f"{prefix}HTTP_PORT": str(free_port())}
        return replica

    def instances(self, name: str) -> list[str]:
        """Service ``name``'s instances: itself and its replicas."""
        return [other for other in self.services if other.split("~")[0] == name]

    def _port(self, name: str, field: str) -> int:
        return int(self.env[name][f"{self.services[name].config.ENV_PREFIX}{field}"])

    def http(self, name: str) -> str:
        return f"http://{HOST}:{self._port(name, 'HTTP_PORT')}"

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(
            nats_url=self.nats_url,
            database_url=self.database_url,
            scheduling_http=self.http("scheduling-adapter"),
            scheduling_mllp=(HOST, self._port("scheduling-adapter", "MLLP_PORT")),
            billing_http=self.http("billing-adapter"),
            billing_mllp=(HOST, self._port("billing-adapter", "MLLP_PORT")),
            validator_http=self.http("masterdata-validator"),
            mapper_http=self.http("mapper"),
            poster_http=self.http("erp-poster"),
            inbox_dir=self.inbox,
            remittance_site=self.env["billing-adapter"]["CAREBUS_BILLING_ADAPTER_DEFAULT_SITE"],
            console_http=self.http("ops-console") if "ops-console" in self.services else None,
        )

    # -- processes --------------------------------------------------------------------------
    def command(self, name: str) -> tuple[list[str], dict[str, str]]:
        """The command line and environment service ``name`` starts with (the fault suite
        runs some through its test-only entry point)."""
        return self.services[name].command(sys.executable), self.env[name]

    def start(self, names: Iterable[str] | None = None, timeout_s: float = 90.0) -> None:
        chosen = list(names or self.services)
        for name in chosen:
            argv, env = self.command(name)
            log = (self.logs / f"{name}.log").open("ab")
            self.processes[name] = subprocess.Popen(
                argv,
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready(chosen, timeout_s)

    def ready(self, name: str) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http(name)}/health/ready", timeout=1) as r:
                return bool(r.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def wait_ready(self, names: Iterable[str], timeout_s: float) -> None:
        waiting = list(names)
        deadline = time.monotonic() + timeout_s
        while waiting and time.monotonic() < deadline:
            for name in list(waiting):
                code = self.processes[name].poll()
                if code is not None:
                    raise RuntimeError(f"{name} exited with {code}; see {self.logs}/{name}.log")
                if self.ready(name):
                    waiting.remove(name)
            time.sleep(0.2)
        if waiting:
            raise TimeoutError(f"not ready after {timeout_s:.0f}s: {', '.join(waiting)}")

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def kill(self, name: str) -> None:
        """SIGKILL: no drain, no ack of what is in flight."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def terminate(self, name: str, timeout_s: float = 30.0) -> int:
        process = self.processes[name]
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(timeout=10)

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            if self.processes[name].poll() is None:
                self.terminate(name)

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> ServiceStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
