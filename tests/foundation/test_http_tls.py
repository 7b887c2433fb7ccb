"""A service serves HTTPS when its TLS certificate and key are configured."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from carebus_shared.cli.services import discover
from carebus_shared.config import RuntimeSettings
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.runtime.server import tls_files
from carebus_shared.settings import SettingsError
from tests.support import auth
from tests.support.service_process import service_process, wait_until

pytestmark = pytest.mark.slow


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_half_a_tls_configuration_is_refused() -> None:
    assert tls_files(RuntimeSettings()) == (None, None)
    with pytest.raises(SettingsError):
        tls_files(RuntimeSettings(tls_cert="/etc/cert.pem"))


def test_a_service_with_a_certificate_answers_over_https(
    private_nats: NatsServer, database_url: str, tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path)
    mapper = next(s for s in discover() if s.name == "mapper")
    # A NATS server of its own: what the service declares stays off the shared one.
    process = service_process(mapper, private_nats.url, database_url, tmp_path)
    prefix = mapper.config.ENV_PREFIX
    process.env |= {f"{prefix}TLS_CERT": str(cert), f"{prefix}TLS_KEY": str(key)}
    context = ssl.create_default_context(cafile=str(cert))
    url = f"https://127.0.0.1:{process.http_port}"

    def get(path: str) -> tuple[int, dict[str, str]]:
        request = urllib.request.Request(url + path, headers=auth.HEADERS)
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as response:
                return response.status, dict(response.headers)
        except OSError:
            return 0, {}

    process.start()
    try:
        wait_until(lambda: get("/health/live")[0] == 200, 60, "the mapper over HTTPS")
        # Retried: on a loaded machine one answer can outlast the client's timeout (CI once).
        wait_until(lambda: get("/metrics")[0] == 200, 60, f"/metrics ({process.log_path})")
        status, headers = get("/metrics")
        assert status == 200, process.log_path.read_text()[-4000:]
        assert headers["strict-transport-security"].startswith("max-age=")
    finally:
        process.terminate()
