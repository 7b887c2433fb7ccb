"""The exceptions API over real PostgreSQL and NATS: filters, paging, history, re-drive of a
stream message (as stored and corrected), of an input an adapter kept (forwarded to the real
scheduling adapter), discard and bulk re-drive. The routes are mounted in a small Litestar
app here; the ops console mounts the same ones."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import msgspec
import nats
import pytest
from litestar import Litestar
from nats.aio.client import Client

from carebus_contracts import encode, headers_for, subject_for
from carebus_contracts.examples import build_examples
from carebus_contracts.scheduling import AppointmentBooked
from carebus_contracts.subjects import STREAM_SCHEDULING
from carebus_shared import audit, crypto
from carebus_shared.auth.client import bearer
from carebus_shared.auth.guard import AuthSettings, HttpAuth
from carebus_shared.db.migrations import load_migrations, migrate
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.devstack.ports import free_port
from carebus_shared.exceptions import store
from carebus_shared.exceptions.actions import ExceptionActions
from carebus_shared.exceptions.adapter_client import AdapterRedriveClient
from carebus_shared.exceptions.api import exceptions_api_routes
from carebus_shared.exceptions.store import ExceptionRecord
from carebus_shared.http.problems import EXCEPTION_HANDLERS
from tests.support import auth
from tests.support.scheduling import (
    MllpClient,
    kept_records,
    provision_all,
    read_ack,
    running_adapter,
    settings_for,
    siu_message,
    stored_events,
)

SECRET = "MRN-SECRET-4417"  # a patient identifier that must never appear in an answer or log
_BOOKED = next(e for e, _ in build_examples() if isinstance(e, AppointmentBooked))


@pytest.fixture(scope="module")
def api_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("exceptions-api-nats"))
    server.start()
    yield server
    server.stop(kill=True)


@pytest.fixture
async def nc(api_nats: NatsServer) -> AsyncIterator[Client]:
    await provision_all(api_nats.url)
    client = await nats.connect(api_nats.url)
    yield client
    await client.close()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    conn = await asyncpg.connect(database_url)
    await migrate(conn, store.OWNER, load_migrations("carebus_shared.exceptions"))
    await migrate(conn, audit.OWNER, load_migrations(audit.PACKAGE))
    await conn.close()
    created = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield created
    await created.close()


def _api(
    pool: asyncpg.Pool, nc: Client, adapter_urls: dict[str, str] | None = None, **kw: Any
) -> tuple[httpx.AsyncClient, AdapterRedriveClient]:
    # The API forwards to an adapter with its own key (the tests' client, which may name
    # the person it acts for), as the ops console does.
    adapters = AdapterRedriveClient(adapter_urls or {}, timeout_s=15.0, service_key=auth.KEY)
    actions = ExceptionActions(lambda: pool, nc.jetstream, adapters, **kw)
    guard = HttpAuth(lambda: pool, AuthSettings()).guard
    app = Litestar(
        exceptions_api_routes(actions), exception_handlers=EXCEPTION_HANDLERS, guards=[guard]
    )
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://ops",
        timeout=20.0,
        headers=auth.HEADERS,
    )
    return client, adapters


@pytest.fixture
async def api(pool: asyncpg.Pool, nc: Client) -> AsyncIterator[httpx.AsyncClient]:
    client, adapters = _api(pool, nc, bulk_max=5)
    async with client:
        yield client
    await adapters.aclose()


@pytest.fixture
async def alice(database_url: str) -> dict[str, str]:
    """An operator's credential: the actor recorded is the client's name, alice."""
    return bearer(await auth.client(database_url, "alice"))


def _event(site: str, n: int) -> AppointmentBooked:
    return msgspec.structs.replace(_BOOKED, event_id=f"evt-{site}-{n}", site=site)


async def _parked(pool: asyncpg.Pool, nc: Client, site: str, n: int, **fields: Any) -> int:
    """A scheduling event published to its stream and recorded as a stage would have."""
    event = _event(site, n)
    subject, raw, headers = subject_for(event), encode(event), headers_for(event)
    ack = await nc.jetstream().publish(subject, raw, headers=headers)
    record = ExceptionRecord(
        **{
            "dedupe_key": f"{STREAM_SCHEDULING}:{ack.seq}:{uuid.uuid4().hex}",
            "stage": "masterdata-validator-scheduling",
            "category": "masterdata",
            "reason": "unknown_provider",
            "message": "provider_code did not resolve",
            "source": "jetstream",
            "site": site,
            "event_id": event.event_id,
            "stream": STREAM_SCHEDULING,
            "stream_seq": ack.seq,
            "subject": subject,
            "raw": raw,
            "headers": headers,
            "path": "$.appointment.provider_code",
            "offending_value": SECRET,
            **fields,
        }
    )
    async with pool.acquire() as conn:
        record_id = await store.record(conn, record)
    assert record_id is not None
    return record_id


async def _stream_message(nc: Client, msg_id: str) -> tuple[str, bytes] | None:
    js = nc.jetstream()
    state = (await js.stream_info(STREAM_SCHEDULING)).state
    for seq in range(state.last_seq, max(state.first_seq, state.last_seq - 200) - 1, -1):
        msg = await js.get_msg(STREAM_SCHEDULING, seq)
        if (msg.headers or {}).get("Nats-Msg-Id") == msg_id:
            assert msg.subject is not None
            assert msg.data is not None
            return msg.subject, msg.data
    return None


async def _record(api: httpx.AsyncClient, record_id: int, **params: str) -> dict[str, Any]:
    reply = await api.get(f"/v1/exceptions/{record_id}", params=params)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def _audited(pool: asyncpg.Pool, record_id: int) -> list[tuple[str, str, str]]:
    """(actor, action, outcome) of the audit entries naming the record, oldest first."""
    async with pool.acquire() as conn:
        found = await audit.entries(conn, target_kind="exception_record", target_id=str(record_id))
    return [(e.actor, e.action, e.outcome) for e in reversed(found)]


def _site() -> str:
    return f"S{uuid.uuid4().hex[:8].upper()}"


# -- queries -----------------------------------------------------------------------------------
async def test_filters_cursor_paging_and_totals(
    api: httpx.AsyncClient, pool: asyncpg.Pool, nc: Client
) -> None:
    site = _site()
    ids = [await _parked(pool, nc, site, n) for n in range(5)]
    mapper = await _parked(pool, nc, site, 5, stage="mapper", category="mapping", reason="no_rule")
    async with pool.acquire() as conn:  # spread them over time, oldest first
        for age, record_id in enumerate(reversed([*ids, mapper])):
            await conn.execute(
                "UPDATE carebus_exceptions.exception_record "
                "SET recorded_at = now() - make_interval(hours => $2) WHERE id = $1",
                record_id,
                age,
            )

    seen: list[int] = []
    cursor: str | None = None
    for _ in range(10):  # bounded: 6 records in pages of 4 take two
        params = {"site": site, "limit": "4", **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/v1/exceptions", params=params)).json()
        assert page["total"] == 6
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted([*ids, mapper], reverse=True)  # newest first, none twice
    assert "offending_value" not in page["items"][0]
    assert "raw" not in page["items"][0]

    async def total(**params: str) -> int:
        reply = await api.get("/v1/exceptions", params={"site": site, **params})
        assert reply.status_code == 200, reply.text
        return int(reply.json()["total"])

    assert await total(stage="masterdata_validator") == 5  # the contract stage
    assert await total(stage="masterdata-validator-scheduling") == 5  # the consumer's name
    assert await total(stage="mapper") == 1
    assert await total(reason="mapping") == 1  # a category
    assert await total(reason="unknown_provider") == 5  # a reason code
    assert await total(status="open") == 6
    assert await total(status="discarded") == 0
    now = datetime.now(UTC)
    assert await total(since=(now - timedelta(hours=2, minutes=30)).isoformat()) == 3
    window = {
        "since": (now - timedelta(hours=4, minutes=30)).isoformat(),
        "until": (now - timedelta(hours=1, minutes=30)).isoformat(),
    }
    assert await total(**window) == 3


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "pending"}, "status"),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
        ({"cursor": "!!"}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"since": "2025-03-10T09:00:00"}, "since"),  # no time zone
        ({"since": "2025-03-11T00:00:00Z", "until": "2025-03-10T00:00:00Z"}, "since"),
    ],
)
async def test_a_bad_filter_is_a_400_naming_the_field(
    api: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    reply = await api.get("/v1/exceptions", params=params)
    assert reply.status_code == 400
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert reply.json()["field"] == field


async def test_an_unreadable_date_is_a_400_that_does_not_echo_it(api: httpx.AsyncClient) -> None:
    reply = await api.get("/v1/exceptions", params={"since": SECRET})
    assert reply.status_code == 400
    assert SECRET not in reply.text


async def test_the_payload_is_shown_only_when_asked_for(
    alice: dict[str, str], api: httpx.AsyncClient, pool: asyncpg.Pool, nc: Client
) -> None:
    record_id = await _parked(pool, nc, _site(), 0)
    plain = await _record(api, record_id)
    assert SECRET not in str(plain)
    assert "raw_base64" not in plain["record"]
    assert plain["record"]["raw_bytes"] > 0
    assert await _audited(pool, record_id) == []  # no patient data shown: nothing audited
    reply = await api.get(f"/v1/exceptions/{record_id}?include=payload", headers=alice)
    assert await _audited(pool, record_id) == [("alice", "phi_view", "shown")]
    shown = reply.json()
    raw = base64.b64decode(shown["record"]["raw_base64"])
    assert msgspec.json.decode(raw)["event_id"] == shown["record"]["event_id"]
    assert shown["record"]["offending_value"] == SECRET
    assert (await api.get(f"/v1/exceptions/{record_id}?include=all")).status_code == 400
    missing = await api.get("/v1/exceptions/987654321987")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


# -- re-drive of a stream message ---------------------------------------------------------------
async def test_a_stream_message_is_redriven_as_stored_and_its_history_kept(
    alice: dict[str, str], api: httpx.AsyncClient, pool: asyncpg.Pool, nc: Client
) -> None:
    record_id = await _parked(pool, nc, _site(), 0)
    reply = await api.post(f"/v1/exceptions/{record_id}/redrive", headers=alice)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["outcome"] == "redriven"
    assert await _audited(pool, record_id) == [("alice", "redrive", "redriven")]
    [msg_id] = body["event_ids"]
    landed = await _stream_message(nc, msg_id)
    assert landed is not None
    shown = await _record(api, record_id, include="payload")
    assert landed == (shown["record"]["subject"], base64.b64decode(shown["record"]["raw_base64"]))
    assert shown["record"]["status"] == "redriven"
    assert shown["record"]["resolved_by"] == "alice"  # the old columns still say it
    [action] = shown["history"]
    assert (action["actor"], action["action"], action["outcome"]) == (
        "alice",
        "redrive",
        "redriven",
    )
    assert action["sent_bytes"] is None  # nothing corrected was sent

    again = await api.post(f"/v1/exceptions/{record_id}/redrive", headers=alice)
    assert again.status_code == 409
    assert again.json()["outcome"] == "not_open"
    assert len((await _record(api, record_id))["history"]) == 1


async def test_a_corrected_message_is_checked_then_republished(
    alice: dict[str, str],
    api: httpx.AsyncClient,
    pool: asyncpg.Pool,
    nc: Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    site = _site()
    record_id = await _parked(pool, nc, site, 0)
    original = msgspec.json.decode(encode(_event(site, 0)))

    def body(**appointment: Any) -> bytes:
        return msgspec.json.encode(
            {**original, "appointment": {**original["appointment"], **appointment}}
        )

    bad = await api.post(
        f"/v1/exceptions/{record_id}/redrive", content=body(status=SECRET), headers=alice
    )
    assert bad.status_code == 422
    problem = bad.json()
    assert problem["outcome"] == "rejected"
    assert problem["report"]["path"] == "$.appointment.status"
    assert "$.appointment.status" in problem["detail"]
    assert SECRET not in bad.text

    moved = msgspec.json.encode({**original, "site": "ELSEWHERE"})
    other_site = await api.post(f"/v1/exceptions/{record_id}/redrive", content=moved)
    assert other_site.status_code == 422
    assert other_site.json()["reason"] == "subject_changed"

    shown = await _record(api, record_id)
    assert shown["record"]["status"] == "open"
    assert [a["outcome"] for a in shown["history"]] == ["rejected", "rejected"]
    assert SECRET not in str(shown)

    corrected = body(provider_code="DRJONES")
    good = await api.post(f"/v1/exceptions/{record_id}/redrive", content=corrected, headers=alice)
    assert good.status_code == 200, good.text
    [msg_id] = good.json()["event_ids"]
    landed = await _stream_message(nc, msg_id)
    assert landed is not None
    assert landed[1] == corrected
    history = (await _record(api, record_id, include="payload"))["history"]
    assert [a["outcome"] for a in history] == ["rejected", "rejected", "redriven"]
    assert history[-1]["sent_bytes"] == len(corrected)
    assert base64.b64decode(history[-1]["sent_body_base64"]) == corrected
    assert SECRET not in caplog.text


# -- re-drive of an input an adapter kept --------------------------------------------------------
async def test_an_input_the_adapter_kept_is_redriven_through_the_adapter(
    alice: dict[str, str], pool: asyncpg.Pool, nc: Client, api_nats: NatsServer, database_url: str
) -> None:
    settings = settings_for(api_nats.url, database_url)
    async with running_adapter(settings) as adapter:
        broken = siu_message(f"OPS-{uuid.uuid4().hex[:6]}", slot="")
        client = await MllpClient.connect(adapter.mllp_port)
        try:
            assert read_ack(await client.send(broken)).code == "AE"
        finally:
            await client.close()
        [record] = await kept_records(database_url, "hl7", broken)
        url = f"http://127.0.0.1:{settings.http_port}"
        api, adapters = _api(pool, nc, {"scheduling_adapter": url})
        async with api:
            again = await api.post(f"/v1/exceptions/{record['id']}/redrive", headers=alice)
            assert again.status_code == 422  # the stored input fails again, as the adapter says
            assert again.json()["reason"] == "required_field_missing"

            control_id = broken.split(b"|")[9].decode()
            fixed = siu_message(control_id)
            reply = await api.post(
                f"/v1/exceptions/{record['id']}/redrive", content=fixed, headers=alice
            )
            assert reply.status_code == 200, reply.text
            [event_id] = reply.json()["event_ids"]
            assert event_id in {s.msg_id for s in await stored_events(api_nats.url)}
            shown = await _record(api, record["id"])
        await adapters.aclose()
    assert shown["record"]["status"] == "redriven"
    assert [(a["actor"], a["outcome"]) for a in shown["history"]] == [
        ("alice", "rejected"),
        ("alice", "redriven"),
    ]
    assert shown["history"][1]["sent_bytes"] == len(fixed)
    # Audited once each, by the adapter that re-drove it (not again by the API forwarding it).
    assert await _audited(pool, record["id"]) == [
        ("alice", "redrive", "rejected"),
        ("alice", "redrive", "redriven"),
    ]


async def test_an_unreachable_or_unconfigured_adapter_leaves_the_record_open(
    pool: asyncpg.Pool, nc: Client
) -> None:
    async with pool.acquire() as conn:
        record_id = await store.record(
            conn,
            ExceptionRecord(
                dedupe_key=f"billing_adapter:x12:{uuid.uuid4().hex}",
                stage="billing_adapter",
                category="contract",
                reason="unbalanced",
                message="the 835 does not balance",
                source="x12",
                raw=b"ISA*...",
            ),
        )
    nobody = f"http://127.0.0.1:{free_port()}"
    api, adapters = _api(pool, nc, {"billing_adapter": nobody})
    async with api:
        down = await api.post(f"/v1/exceptions/{record_id}/redrive")
        assert down.status_code == 503
        assert down.json()["outcome"] == "unavailable"
        assert "Retry-After" in down.headers
    await adapters.aclose()
    api, adapters = _api(pool, nc, {})
    async with api:
        unknown = await api.post(f"/v1/exceptions/{record_id}/redrive")
        assert unknown.status_code == 409
        assert unknown.json()["outcome"] == "not_redrivable_here"
        assert (await _record(api, record_id or 0))["record"]["status"] == "open"
    await adapters.aclose()


# -- discard and bulk ----------------------------------------------------------------------------
async def test_a_discard_needs_a_reason_and_is_kept_in_history(
    alice: dict[str, str], api: httpx.AsyncClient, pool: asyncpg.Pool, nc: Client
) -> None:
    record_id = await _parked(pool, nc, _site(), 0)
    url = f"/v1/exceptions/{record_id}/discard"
    for body in (b"", b"{}", b'{"reason": "   "}', b'{"reason": 3}', b"not json"):
        reply = await api.post(url, content=body, headers=alice)
        assert reply.status_code == 400, body
        assert reply.json()["field"] in ("$", "reason", "$.reason")
    assert (await _record(api, record_id))["history"] == []

    done = await api.post(url, json={"reason": "duplicate of a corrected file"}, headers=alice)
    assert done.status_code == 200
    assert done.json()["outcome"] == "discarded"
    shown = await _record(api, record_id)
    assert shown["record"]["status"] == "discarded"
    [action] = shown["history"]
    assert (action["actor"], action["action"], action["note"]) == (
        "alice",
        "discard",
        "duplicate of a corrected file",
    )
    twice = await api.post(url, json={"reason": "again"})
    assert twice.status_code == 409
    assert await _audited(pool, record_id) == [
        ("alice", "discard", "discarded"),
        (auth.NAME, "discard", "not_open"),  # the authenticated client, no header needed
    ]
    missing = await api.post("/v1/exceptions/987654321987/discard", json={"reason": "x"})
    assert missing.status_code == 404


async def test_bulk_redrive_dry_run_names_them_and_the_real_one_is_bounded(
    alice: dict[str, str], api: httpx.AsyncClient, pool: asyncpg.Pool, nc: Client
) -> None:
    site = _site()
    ids = [await _parked(pool, nc, site, n) for n in range(3)]
    dry = await api.post("/v1/exceptions/redrive", json={"site": site, "limit": 5})
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True  # the default: nothing is re-driven unasked
    assert (dry.json()["matched"], dry.json()["ids"]) == (3, ids)
    for record_id in ids:
        assert (await _record(api, record_id))["history"] == []

    real = await api.post(
        "/v1/exceptions/redrive",
        json={"site": site, "reason": "masterdata", "limit": 2, "dry_run": False},
        headers=alice,
    )
    body = real.json()
    assert (body["matched"], body["ids"], body["outcomes"]) == (3, ids[:2], {"redriven": 2})
    for result in body["results"]:
        assert await _stream_message(nc, result["event_ids"][0]) is not None
    first = await _record(api, ids[0])
    assert first["record"]["status"] == "redriven"
    assert [(a["action"], a["actor"]) for a in first["history"]] == [("bulk_redrive", "alice")]
    assert (await _record(api, ids[2]))["record"]["status"] == "open"
    after = (await api.post("/v1/exceptions/redrive", json={"site": site, "limit": 5})).json()
    assert (after["matched"], after["ids"]) == (1, ids[2:])

    for bad, field in (
        ({"site": site, "limit": 6}, "limit"),  # past this API's bound of 5
        ({"site": site, "limit": 2, "status": "discarded"}, "status"),
        ({"site": site}, "$"),  # limit is required
    ):
        refused = await api.post("/v1/exceptions/redrive", json=bad)
        assert refused.status_code == 400, bad
        assert refused.json()["field"] == field


# -- the CLI -------------------------------------------------------------------------------------
async def _carebus(nats_url: str, database_url: str, *args: str) -> tuple[int, str]:
    env = {**os.environ, "NATS_URL": nats_url, "DATABASE_URL": database_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "carebus_shared.cli.main", "exceptions", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_the_cli_filters_discards_with_a_reason_and_redrives(
    api: httpx.AsyncClient, pool: asyncpg.Pool, nc: Client, api_nats: NatsServer, database_url: str
) -> None:
    site = _site()
    parked = await _parked(pool, nc, site, 0)
    mapped = await _parked(pool, nc, site, 1, stage="mapper", category="mapping", reason="no_rule")
    urls = (api_nats.url, database_url)

    code, out = await _carebus(*urls, "list", "--site", site, "--reason", "mapping")
    assert code == 0
    assert f"{mapped:>6} " in out
    assert f"{parked:>6} " not in out
    assert "1 shown of 1 matching" in out
    code, out = await _carebus(*urls, "list", "--site", site, "--stage", "masterdata_validator")
    assert f"{parked:>6} " in out
    assert f"{mapped:>6} " not in out

    code, _ = await _carebus(*urls, "discard", str(mapped))
    assert code == 2  # --reason is required
    code, out = await _carebus(*urls, "discard", str(mapped), "--reason", "rule retired")
    assert code == 0, out
    assert (await _record(api, mapped))["history"][0]["note"] == "rule retired"

    code, out = await _carebus(*urls, "redrive", str(parked))
    assert code == 0, out
    assert "redriven" in out
    shown = await _record(api, parked)
    assert shown["record"]["status"] == "redriven"
    assert shown["history"][0]["action"] == "redrive"
    code, out = await _carebus(*urls, "list", "--site", site, "--status", "all")
    assert "2 shown of 2 matching" in out
    code, out = await _carebus(*urls, "list", "--site", site)  # open ones only, by default
    assert "no matching exceptions" in out


# -- at rest (docs/decisions/028) ----------------------------------------------------------
async def test_kept_inputs_are_sealed_in_postgresql_and_redrive_opens_them(
    data_key: crypto.Keyring, alice: dict[str, str], api: httpx.AsyncClient, pool: asyncpg.Pool,
    nc: Client,
) -> None:  # fmt: skip
    record_id = await _parked(pool, nc, _site(), 0)
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT raw, offending_value FROM carebus_exceptions.exception_record WHERE id = $1",
            record_id,
        )
        kept = await store.get(conn, record_id)
    assert kept is not None
    plain = kept["raw"]
    assert plain.startswith(b"{")
    assert plain not in bytes(row["raw"])
    assert crypto.sealed_with(bytes(row["raw"])) == "test-1"
    assert SECRET not in row["offending_value"]
    assert kept["offending_value"] == SECRET

    shown = await _record(api, record_id, include="payload")  # the view opens it
    assert base64.b64decode(shown["record"]["raw_base64"]) == plain
    assert shown["record"]["offending_value"] == SECRET
    reply = await api.post(f"/v1/exceptions/{record_id}/redrive", headers=alice)
    assert reply.status_code == 200, reply.text
    [msg_id] = reply.json()["event_ids"]
    assert await _stream_message(nc, msg_id) == (kept["subject"], plain)  # as sent, opened
    async with pool.acquire() as conn:  # from where: the request's peer, bound by the guard
        found = await audit.entries(conn, target_kind="exception_record", target_id=str(record_id))
    assert {e.client_address for e in found} == {"127.0.0.1"}  # httpx's ASGI transport's

    # Another key (the same id, other bytes) opens nothing and says which key was used.
    crypto.configure(crypto.Keyring.parse(crypto.new_key_line("test-1")))
    async with pool.acquire() as conn:
        with pytest.raises(crypto.DataKeyError, match="'test-1'"):
            await store.get(conn, record_id)


async def test_rows_written_before_encryption_still_read(
    data_key: crypto.Keyring, pool: asyncpg.Pool, nc: Client
) -> None:
    crypto.configure(None)  # written in plaintext, as before encryption
    record_id = await _parked(pool, nc, _site(), 1)
    crypto.configure(data_key)
    async with pool.acquire() as conn:
        raw = await conn.fetchval(
            "SELECT raw FROM carebus_exceptions.exception_record WHERE id = $1", record_id
        )
        kept = await store.get(conn, record_id)
    assert kept is not None
    assert crypto.sealed_with(bytes(raw)) is None
    assert kept["raw"] == bytes(raw)
    assert kept["offending_value"] == SECRET
