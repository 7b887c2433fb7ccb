"""Writing exception records, one or many in a statement, against a real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from carebus_shared.db.migrations import load_migrations, migrate
from carebus_shared.exceptions import store
from carebus_shared.exceptions.store import ExceptionRecord


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    await migrate(connection, store.OWNER, load_migrations("carebus_shared.exceptions"))
    yield connection
    await connection.close()


def _record(key: str, **fields: object) -> ExceptionRecord:
    base: dict[str, object] = {
        "dedupe_key": key,
        "stage": "masterdata-validator",
        "category": "masterdata",
        "reason": "unknown_payer",
        "message": f"payer of {key} is unknown",
        "source": "jetstream",
    }
    return ExceptionRecord(**{**base, **fields})  # type: ignore[arg-type]


async def test_many_records_in_one_statement_keep_every_field(
    conn: asyncpg.Connection,
) -> None:
    tag = uuid.uuid4().hex[:8]
    recs = [
        _record(
            f"{tag}:{i}",
            site="S01",
            event_id=f"ev-{i}",
            stream="BILLING",
            stream_seq=i,
            subject="billing.payment.x",
            content_type="application/json",
            raw=b"\x00raw\xff" + bytes([i]),
            headers={"Nats-Msg-Id": f"ev-{i}"},
            path="$.payer",
            offending_value=f"P{i}",
        )
        for i in range(150)
    ]
    ids = await store.record_all(conn, recs)
    assert all(isinstance(i, int) for i in ids)
    assert len(set(ids)) == 150
    row = await conn.fetchrow(
        "SELECT * FROM carebus_exceptions.exception_record WHERE id = $1", ids[7]
    )
    assert row["dedupe_key"] == f"{tag}:7"
    assert row["stream_seq"] == 7
    assert row["raw"] == b"\x00raw\xff\x07"
    assert row["offending_value"] == "P7"
    assert "ev-7" in row["headers"]


async def test_a_failure_already_recorded_gets_no_new_id(conn: asyncpg.Connection) -> None:
    tag = uuid.uuid4().hex[:8]
    first = await store.record(conn, _record(f"{tag}:a"))
    assert first is not None
    ids = await store.record_all(
        conn, [_record(f"{tag}:a"), _record(f"{tag}:b"), _record(f"{tag}:b")]
    )
    assert ids[0] is None  # recorded before
    assert isinstance(ids[1], int)
    assert ids[2] is None  # the same failure earlier in this call
    count = await conn.fetchval(
        "SELECT count(*) FROM carebus_exceptions.exception_record WHERE dedupe_key LIKE $1",
        f"{tag}:%",
    )
    assert count == 2


async def test_text_postgresql_cannot_store_is_cleaned_and_the_raw_input_kept_intact(
    conn: asyncpg.Connection,
) -> None:
    key = f"nul-{uuid.uuid4().hex[:8]}"
    raw = b"MSH|^~\\&|A|SITE\x00X|B|C|20250310||SIU^S12|CTL\x00ID|P|2.5\r"
    [record_id] = await store.record_all(
        conn,
        [
            _record(
                key,
                site="SITE\x00X",
                event_id="hl7:A:SITE\x00X:CTL\x00ID",
                offending_value="x\ud800y",
                headers={"Control-Id": "CTL\x00ID"},
                raw=raw,
            )
        ],
    )
    assert record_id is not None
    row = await store.get(conn, record_id)
    assert row is not None
    assert (row["site"], row["offending_value"]) == ("SITE\ufffdX", "x?y")
    assert store.decode_headers(row["headers"]) == {"Control-Id": "CTL\ufffdID"}
    assert bytes(row["raw"]) == raw
