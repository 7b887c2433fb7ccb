"""The app-wide guard on a real client store: keys, revocation within the cache bound,
scopes, per-client rate limits, the concurrency cap, bearer JWTs from a JWKS, the actor,
security headers, and `carebus clients`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar import Litestar, Request, get, post
from litestar.middleware import DefineMiddleware

from carebus_shared import audit
from carebus_shared.auth import store
from carebus_shared.auth.client import acting_for, bearer
from carebus_shared.auth.guard import AuthSettings, HttpAuth
from carebus_shared.auth.keys import key_hash
from carebus_shared.auth.limits import ConcurrencyCap, TokenBuckets
from carebus_shared.auth.principal import ON_BEHALF_ADDRESS_HEADER, actor_of
from carebus_shared.auth.scopes import (
    EXCEPTIONS_WRITE,
    MASTERDATA_WRITE,
    PUBLIC,
    requires,
)
from carebus_shared.devstack.ports import free_port
from carebus_shared.http.headers import SecurityHeaders
from carebus_shared.http.problems import EXCEPTION_HANDLERS
from tests.support import auth

CAREBUS = str(Path(sys.executable).parent / "carebus")
ISSUER, AUDIENCE = "https://idp.test", "carebus"


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield created
    await created.close()


def _app(pool: asyncpg.Pool, settings: AuthSettings, cap: int = 100) -> Litestar:
    @get("/health/live", **PUBLIC, sync_to_thread=False)
    def live() -> str:
        return "ok"

    @post("/v1/things", request_max_body_size=1024, **requires(MASTERDATA_WRITE))
    async def change(request: Request[Any, Any, Any]) -> dict[str, str]:
        return {"actor": actor_of(request)}

    @get("/v1/where", **requires(MASTERDATA_WRITE))
    async def where(request: Request[Any, Any, Any]) -> dict[str, str | None]:
        return {"actor": actor_of(request), "from": audit.client_address()}

    @get("/v1/slow", **requires(EXCEPTIONS_WRITE))
    async def slow() -> str:
        await asyncio.sleep(0.5)
        return "done"

    return Litestar(
        [live, change, where, slow],
        guards=[HttpAuth(lambda: pool, settings).guard],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[SecurityHeaders, DefineMiddleware(ConcurrencyCap, limit=cap)],
    )


def _client(app: Litestar) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_only_the_hash_is_stored_and_the_key_names_its_client(
    pool: asyncpg.Pool, database_url: str
) -> None:
    key = await auth.client(database_url, "steward-1", (MASTERDATA_WRITE,))
    stored = await pool.fetchval(
        "SELECT key_hash FROM carebus_auth.client WHERE name = 'steward-1'"
    )
    assert bytes(stored) == key_hash(key)
    assert key.encode() not in bytes(stored)
    async with _client(_app(pool, AuthSettings())) as http:
        done = await http.post("/v1/things", headers=bearer(key))
        assert done.status_code == 201
        assert done.json() == {"actor": "steward-1"}
        # Only a delegating client (the console) names someone else; others are themselves.
        claimed = await http.post("/v1/things", headers=acting_for(key, "the-ceo"))
        assert claimed.json() == {"actor": "steward-1"}
        delegated = await http.post("/v1/things", headers=acting_for(auth.KEY, "dana"))
        assert delegated.json() == {"actor": "dana"}


async def test_only_a_delegating_client_says_from_where_its_person_acts(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """The audit's "from where": the peer; for the console (actor:delegate), the address of
    the person it forwards (an IP address only). Anyone else naming one is ignored."""
    key = await auth.client(database_url, "steward-2", (MASTERDATA_WRITE,))
    elsewhere = {ON_BEHALF_ADDRESS_HEADER: "192.0.2.7"}
    async with _client(_app(pool, AuthSettings())) as http:
        own = await http.get("/v1/where", headers={**bearer(key), **elsewhere})
        assert own.json() == {"actor": "steward-2", "from": "127.0.0.1"}
        for sent, seen in (("192.0.2.7", "192.0.2.7"), ("2001:db8::1", "2001:db8::1"),
                           ("dana's laptop", "127.0.0.1"), ("", "127.0.0.1")):  # fmt: skip
            headers = {**acting_for(auth.KEY, "dana"), ON_BEHALF_ADDRESS_HEADER: sent}
            forwarded = await http.get("/v1/where", headers=headers)
            assert forwarded.json() == {"actor": "dana", "from": seen}, sent
    # The console sends the address its own request was bound to.
    audit.bind_client_address("198.51.100.4")
    try:
        assert acting_for("k", "dana")[ON_BEHALF_ADDRESS_HEADER] == "198.51.100.4"
    finally:
        audit.bind_client_address(None)


async def test_401_403_are_problems_and_headers_are_set(
    pool: asyncpg.Pool, database_url: str
) -> None:
    reader = await auth.client(database_url, "reader-1", (EXCEPTIONS_WRITE,))
    async with _client(_app(pool, AuthSettings())) as http:
        assert (await http.get("/health/live")).status_code == 200
        missing = await http.post("/v1/things")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == 'Bearer realm="carebus"'
        assert missing.headers["content-type"].startswith("application/problem+json")
        unknown = await http.post("/v1/things", headers=bearer("cbk_" + "x" * 43))
        assert unknown.status_code == 401
        assert 'error="invalid_token"' in unknown.headers["www-authenticate"]
        wrong = await http.post("/v1/things", headers=bearer(reader))
        assert wrong.status_code == 403
        assert wrong.json()["required_scopes"] == [MASTERDATA_WRITE]
        assert reader not in wrong.text
        for answer in (missing, wrong):
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["cache-control"] == "no-store"
            assert answer.headers["x-frame-options"] == "DENY"


async def test_a_revoked_key_is_refused_within_the_cache_time(
    pool: asyncpg.Pool, database_url: str
) -> None:
    key = await auth.client(database_url, "revoked-1", (MASTERDATA_WRITE,))
    cache_s = 0.5
    async with _client(_app(pool, AuthSettings(cache_s=cache_s))) as http:
        assert (await http.post("/v1/things", headers=bearer(key))).status_code == 201
        async with pool.acquire() as conn:
            assert await store.revoke(conn, "revoked-1")
        revoked_at = time.monotonic()
        while (await http.post("/v1/things", headers=bearer(key))).status_code == 201:
            assert time.monotonic() - revoked_at < cache_s + 0.5, "still accepted"
            await asyncio.sleep(0.05)
        assert time.monotonic() - revoked_at <= cache_s + 0.5


async def test_a_client_over_its_rate_gets_429_with_retry_after(
    pool: asyncpg.Pool, database_url: str
) -> None:
    key = await auth.grant(
        database_url, name="chatty", granted=(MASTERDATA_WRITE,), key="cbk_chatty-" + "a" * 40,
        rate_per_s=1.0, burst=3,
    )  # fmt: skip
    async with _client(_app(pool, AuthSettings())) as http:
        answers = [(await http.post("/v1/things", headers=bearer(key))) for _ in range(5)]
        assert [a.status_code for a in answers] == [201, 201, 201, 429, 429]
        throttled = answers[-1]
        assert throttled.headers["retry-after"] == "1"
        assert throttled.headers["content-type"].startswith("application/problem+json")
        # Others are not throttled by one client's burst.
        assert (await http.post("/v1/things", headers=auth.HEADERS)).status_code == 201


def test_a_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(lambda: now[0])
    assert [buckets.take("a", 2.0, 2) for _ in range(3)] == [0.0, 0.0, 0.5]
    now[0] = 0.5  # one token back
    assert buckets.take("a", 2.0, 2) == 0.0
    assert buckets.take("a", 2.0, 2) == pytest.approx(0.5)


async def test_beyond_the_concurrency_cap_503_with_retry_after(pool: asyncpg.Pool) -> None:
    async with _client(_app(pool, AuthSettings(), cap=2)) as http:
        answers = await asyncio.gather(
            *(http.get("/v1/slow", headers=auth.HEADERS) for _ in range(4))
        )
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 200, 503, 503]
        refused = next(a for a in answers if a.status_code == 503)
        assert refused.headers["retry-after"] == "1"
        assert (await http.get("/health/live")).status_code == 200


# -- bearer JWTs ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url(signing_key: rsa.RSAPrivateKey) -> Iterator[str]:
    """A JWKS served on loopback, as an identity provider publishes it."""
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    body = json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: Any) -> None:
            return None

    server = HTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/jwks.json"
    server.shutdown()


def _token(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "exp": now + 300, "iat": now, "sub": "payer-gw"}
    return jwt.encode({**base, **claims}, key, algorithm="RS256", headers={"kid": "k1"})


async def test_bearer_jwts_are_checked_against_the_jwks(
    pool: asyncpg.Pool, jwks_url: str, signing_key: rsa.RSAPrivateKey
) -> None:
    settings = AuthSettings(jwks_url=jwks_url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    async with _client(_app(pool, settings)) as http:

        async def status(token: str) -> int:
            return (await http.post("/v1/things", headers=bearer(token))).status_code

        good = _token(signing_key, scope=f"{MASTERDATA_WRITE} other:scope")
        answer = await http.post("/v1/things", headers=bearer(good))
        assert answer.status_code == 201
        assert answer.json() == {"actor": "payer-gw"}
        assert await status(_token(signing_key, scp=[MASTERDATA_WRITE], client_id="c2")) == 201
        assert await status(_token(signing_key, scope="other:scope")) == 403
        assert await status(_token(signing_key, scope=MASTERDATA_WRITE, exp=1)) == 401
        assert await status(_token(signing_key, scope=MASTERDATA_WRITE, aud="else")) == 401
        assert await status(_token(signing_key, scope=MASTERDATA_WRITE, iss="https://x")) == 401
        assert await status(_token(other, scope=MASTERDATA_WRITE)) == 401  # not the JWKS's
        unsigned = jwt.encode({"sub": "x", "scope": MASTERDATA_WRITE}, None, algorithm="none")
        assert await status(unsigned) == 401


def test_clients_are_added_listed_and_revoked_from_the_command_line(database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}

    def carebus(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CAREBUS, "clients", *args], env=env, capture_output=True, text=True, timeout=60
        )

    name = f"gateway-{os.getpid()}"
    added = carebus("add", name, "--role", "payer-gateway", "--rate", "5")
    assert added.returncode == 0, added.stderr
    key = added.stdout.split("key (shown once, keep it secret): ")[1].strip()
    assert key.startswith("cbk_")
    assert len(key) >= 40
    assert carebus("add", name, "--role", "admin").returncode == 1  # exists already
    listed = carebus("list").stdout
    line = next(line for line in listed.splitlines() if line.startswith(name))
    assert "active" in line
    assert "remittances:write" in line
    assert key not in listed
    assert carebus("revoke", name).returncode == 0
    assert "revoked" in next(x for x in carebus("list").stdout.splitlines() if x.startswith(name))
    assert carebus("revoke", name).returncode == 1
