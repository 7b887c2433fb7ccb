"""Running a service as a real child process in a test, and probing its HTTP endpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import nats

from carebus_shared.cli.services import ServiceEntry
from carebus_shared.devstack.ports import free_port
from carebus_shared.jetstream.provision import provision
from carebus_shared.jetstream.topology import Topology
from tests.support import auth


def http_get(
    url: str, timeout_s: float = 2.0, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """GET with the tests' credential unless ``headers`` says otherwise."""
    request = urllib.request.Request(url, headers=auth.HEADERS if headers is None else headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def wait_until(predicate: object, timeout_s: float, what: str, interval_s: float = 0.2) -> None:
    """Poll ``predicate()`` until true; fail the test naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


class ServiceProcess:
    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        http_port: int,
        log: Path,
        cwd: Path | None = None,
    ) -> None:
        self.argv, self.http_port, self.log_path, self.cwd = argv, http_port, log, cwd
        self.env = {**os.environ, **env}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> ServiceProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv, env=self.env, stdout=log, stderr=log, cwd=self.cwd
        )
        return self

    def ready(self) -> bool:
        return http_get(f"{self.base}/health/ready", 1.0)[0] == 200

    def readiness(self) -> dict[str, object]:
        status, body = http_get(f"{self.base}/health/ready", 3.0)
        return {"status": status, **(json.loads(body) if body else {})}

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        wait_until(self.ready, timeout_s, f"{self.argv[-1]} ready (log: {self.log_path})")

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and its exit code; one still running after ``timeout_s`` is killed and the
        test fails with its log's end (where a stopping service names its waiting tasks)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{' '.join(self.argv[-3:])} still running {timeout_s:.0f} s after SIGTERM; "
                f"its log ends:\n{self.log_tail()}"
            ) from None

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def service_process(
    service: ServiceEntry, nats_url: str, database_url: str, logs: Path
) -> ServiceProcess:
    """A service's own script as a process on free ports (not started)."""
    port = free_port()
    prefix = service.config.ENV_PREFIX
    env = {
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        f"{prefix}HTTP_PORT": str(port),
        f"{prefix}MLLP_PORT": str(free_port()),
    }
    return ServiceProcess(service.command(sys.executable), env, port, logs / f"{service.name}.log")


# Makes an echo stage process (tests.support.echo_stage, not started): NATS URL, log, delay.
EchoFactory = Callable[[str, Path, float], ServiceProcess]


async def provision_topology(url: str, topology: Topology) -> None:
    nc = await nats.connect(url)
    try:
        await provision(nc.jetstream(), topology)
    finally:
        await nc.close()
