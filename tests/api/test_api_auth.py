"""Every route of every service but /health/* refuses a request without a credential (401)
and one whose client lacks the route's scope (403), both as problem bodies. The routes come
from each service's own OpenAPI document, so a new route cannot slip through unchecked."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.request
from typing import Any

import pytest

from carebus_shared.auth.client import bearer
from carebus_shared.auth.scopes import METRICS_READ, OPS_READ
from tests.support import auth
from tests.support.service_process import http_get

pytestmark = pytest.mark.slow

SERVICES = (
    "scheduling-adapter", "billing-adapter", "masterdata-validator", "mapper", "erp-poster",
    "ops-console",
)  # fmt: skip
_PARAM = re.compile(r"\{[^}]+\}")


def _operations(base: str) -> list[tuple[str, str, dict[str, Any]]]:
    status, body = http_get(f"{base}/schema/openapi.json", 10)
    assert status == 200
    document = json.loads(body)
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


def _call(base: str, method: str, path: str, headers: dict[str, str]) -> tuple[int, Any, Any]:
    url = base + _PARAM.sub("1", path)
    data = b"" if method in ("POST", "PUT", "PATCH") else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


@pytest.fixture(scope="module")
def nobody(api_database: str) -> dict[str, str]:
    """A client that exists but holds a scope no API route asks for."""
    return bearer(asyncio.run(auth.client(api_database, "nobody", (METRICS_READ,))))


@pytest.fixture(scope="module")
def operator_only(api_database: str) -> dict[str, str]:
    return bearer(asyncio.run(auth.client(api_database, "ops-reader", (OPS_READ,))))


@pytest.mark.parametrize("name", SERVICES)
def test_every_route_refuses_without_a_credential_and_without_its_scope(
    running: dict[str, str], nobody: dict[str, str], name: str
) -> None:
    base = running[name]
    operations = _operations(base)
    assert operations, f"{name} documents no route"
    for method, path, operation in operations:
        if path.startswith("/health/"):
            assert not operation.get("security"), f"{path}: a probe needs no credential"
            continue
        schemes = {scheme for requirement in operation["security"] for scheme in requirement}
        assert schemes == {"carebusApiKey", "oauth2"}, f"{method} {path} declares {schemes}"
        status, headers, body = _call(base, method, path, {})
        assert status == 401, f"{method} {path} without a credential: {status}"
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert headers["Content-Type"].startswith("application/problem+json")
        status, _, body = _call(base, method, path, {"Authorization": "Bearer cbk_forged"})
        assert status == 401, f"{method} {path} with an unknown key: {status}"
        status, headers, body = _call(base, method, path, nobody)
        assert status == 403, f"{method} {path} without its scope: {status}"
        problem = json.loads(body)
        assert problem["status"] == 403
        assert problem["required_scopes"], f"{method} {path}"


@pytest.mark.parametrize("name", SERVICES)
def test_metrics_and_the_schema_need_a_credential_and_metrics_its_own_scope(
    running: dict[str, str], nobody: dict[str, str], operator_only: dict[str, str], name: str
) -> None:
    base = running[name]
    assert http_get(f"{base}/health/live", headers={})[0] == 200
    assert http_get(f"{base}/schema/openapi.json", headers={})[0] == 401
    assert http_get(f"{base}/metrics", headers={})[0] == 401
    assert http_get(f"{base}/metrics", headers=nobody)[0] == 200  # nobody holds metrics:read
    assert http_get(f"{base}/metrics", headers=operator_only)[0] == 403


def test_the_console_pages_lead_to_sign_in_and_answer_with_security_headers(
    running: dict[str, str],
) -> None:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    base = running["ops-console"]
    for page in ("/console/", "/console/exceptions", "/console/quarantine", "/console/sites"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(base + page, timeout=10)
        assert refused.value.code in (302, 303), page
        assert refused.value.headers["Location"].startswith("/console/login"), page
    status, body = http_get(f"{base}/console/login", headers={})
    assert status == 200
    assert b'name="key"' in body
    with urllib.request.urlopen(f"{base}/console/login", timeout=10) as response:
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Cache-Control"] == "no-store"
