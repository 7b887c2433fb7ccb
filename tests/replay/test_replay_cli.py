"""`carebus replay` on a real JetStream and PostgreSQL (no stage running: what reaches the
stream, what is recorded, what is refused, and a stage that does not take its backlog)."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import nats
import pytest
from nats.js import api

from carebus_shared.cli.main import main as carebus
from carebus_shared.cli.replay import result_line
from carebus_shared.devstack.nats_server import NatsServer
from carebus_shared.jetstream.topology import VALIDATOR_BILLING
from carebus_shared.jetstream.window import Window
from carebus_shared.replay import records, use_case
from carebus_shared.replay.progress import Lines
from carebus_shared.replay.use_case import Request, Settings
from tests.support.mapper import fresh_database

SITES = ("SITE01", "SITE02")


@pytest.fixture
async def suite(
    private_nats: NatsServer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, str]]:
    """A NATS server and a database of this test's own, named in the env (the tests
    provision them through `carebus provision`)."""
    async with fresh_database(database_url) as db:
        monkeypatch.setenv("NATS_URL", private_nats.url)
        monkeypatch.setenv("DATABASE_URL", db)
        yield private_nats.url, db


def _carebus(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = carebus(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def _publish(url: str, subjects: list[str]) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for n, subject in enumerate(subjects):
            headers = {"Nats-Msg-Id": f"evt-{n}", "Carebus-Schema-Version": "1.0"}
            await js.publish(subject, f'{{"n": {n}}}'.encode(), headers=headers)
    finally:
        await nc.close()


async def _stored(url: str, stream: str) -> list[Any]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        state = (await js.stream_info(stream)).state
        return [await js.get_msg(stream, seq) for seq in range(1, state.last_seq + 1)]
    finally:
        await nc.close()


async def _replays(db: str) -> list[records.Replay]:
    conn = await asyncpg.connect(db)
    try:
        return await records.recent(conn, 20)
    finally:
        await conn.close()


def _provision_with(capsys: pytest.CaptureFixture[str], url: str, subjects: list[str]) -> None:
    assert _carebus(capsys, "provision")[0] == 0
    asyncio.run(_publish(url, subjects))


def _billing(n: int) -> list[str]:
    return [f"billing.charge.posted.v1.{SITES[i % 2]}" for i in range(n)]


def test_provision_applies_the_replay_record_and_a_dry_run_counts_by_subject(
    suite: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _db = suite
    code, out, _ = _carebus(capsys, "provision")
    assert code == 0
    assert "carebus_replay" in out
    assert "applied 001_replay_log.sql" in out
    requested = [f"erp.journal.requested.v1.{SITES[i % 2]}" for i in range(5)]
    asyncio.run(_publish(url, [*requested, "erp.journal.posted.v1.SITE01"]))

    code, out, err = _carebus(
        capsys, "replay", "--stream", "ERP", "--from-seq", "1", "--into", "poster", "--dry-run"
    )
    assert code == 0, err
    # The poster's outcomes on the same stream are not its input: not counted, not replayed.
    assert out.splitlines() == [
        "dry run: ERP seq 1 .. 6 on erp.journal.requested.*.> into erp-poster: "
        "5 messages would be republished",
        out.splitlines()[1],
        "       3  erp.journal.requested.v1.SITE01",
        "       2  erp.journal.requested.v1.SITE02",
    ]
    assert re.fullmatch(r"from seq 1 \(\S+Z\) to seq 5 \(\S+Z\)", out.splitlines()[1])
    assert len(asyncio.run(_stored(url, "ERP"))) == 6
    assert _carebus(capsys, "replay", "--list")[1] == "no replays recorded\n"


def test_a_replay_republishes_each_message_as_a_marked_copy_and_is_recorded(
    suite: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url, db = suite
    _provision_with(capsys, url, _billing(5))

    code, out, err = _carebus(
        capsys, "replay", "--stream", "BILLING", "--from-seq", "2", "--into", "validator"
    )
    assert code == 0, err
    assert out.startswith(
        "replay 1 completed: 4 of 4 messages of BILLING seq 2 .. 5 republished into "
        f"{VALIDATOR_BILLING}"
    )
    # Off a terminal, the progress is a plain line on stderr.
    assert err.startswith(f"replay 1 BILLING → {VALIDATOR_BILLING}: 4/4 (100 %)")
    stored = asyncio.run(_stored(url, "BILLING"))
    assert len(stored) == 9
    for original, copy in zip(stored[1:5], stored[5:], strict=True):
        assert (copy.subject, copy.data) == (original.subject, original.data)
        assert copy.headers == {
            **original.headers,
            "Nats-Msg-Id": f"replay-1-BILLING-{original.seq}",
            "Carebus-Replay": "1",
            "Carebus-Replay-Of": f"BILLING:{original.seq}",
        }

    # A window that holds those copies replays each original once more, not the copies.
    code, out, err = _carebus(
        capsys,
        "replay",
        "--stream",
        "BILLING",
        "--from-seq",
        "1",
        "--into",
        VALIDATOR_BILLING,
        "--actor",
        "ops-alice",
    )
    assert code == 0, err
    assert "5 of 9 messages" in out
    assert "4 copies of earlier replays skipped" in out
    assert len(asyncio.run(_stored(url, "BILLING"))) == 14

    second, first = asyncio.run(_replays(db))
    assert (first.stream, first.stage, first.consumer, first.subject) == (
        "BILLING",
        "masterdata-validator",
        VALIDATOR_BILLING,
        "billing.>",
    )
    assert (first.from_seq, first.to_seq, first.end_seq, first.expected) == (2, None, 5, 4)
    assert (first.read, first.republished, first.skipped, first.last_seq) == (4, 4, 0, 5)
    assert (first.outcome, first.error) == ("completed", None)
    assert first.finished_at is not None
    assert first.finished_at >= first.started_at
    assert (second.actor, second.read, second.republished, second.skipped) == (
        "ops-alice",
        9,
        5,
        4,
    )
    listed = _carebus(capsys, "replay", "--list")[1].splitlines()
    assert listed[0].split() == [
        "ID", "STARTED", "(UTC)", "ACTOR", "STREAM", "INTO", "WINDOW", "READ", "REPUB", "SKIP",
        "TOOK", "OUTCOME",
    ]  # fmt: skip
    assert listed[1].split()[3:] == [
        "ops-alice", "BILLING", VALIDATOR_BILLING, "seq", "1..9", "9", "5", "4",
        listed[1].split()[-2], "completed",
    ]  # fmt: skip
    assert len(listed) == 3


def test_what_cannot_be_replayed_is_refused_with_the_reason(
    suite: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = suite
    code, _, err = _carebus(
        capsys, "replay", "--stream", "ERP", "--from-seq", "1", "--into", "poster"
    )
    assert (code, err) == (
        2,
        "carebus replay: stream ERP does not exist: run `carebus provision`\n",
    )
    assert _carebus(capsys, "provision")[0] == 0
    code, _, err = _carebus(
        capsys, "replay", "--stream", "SCHEDULING", "--from-seq", "1", "--into", "mapper"
    )
    assert (code, err) == (
        2,
        "carebus replay: mapper does not consume SCHEDULING; it consumes VALIDATED\n",
    )
    code, _, err = _carebus(capsys, "replay", "--stream", "ERP", "--into", "poster")
    assert code == 2
    assert "give the window's start" in err

    async def add_archiver() -> None:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().add_consumer(
                "ERP", api.ConsumerConfig(durable_name="archiver", ack_policy=api.AckPolicy.ALL)
            )
        finally:
            await nc.close()

    asyncio.run(add_archiver())
    code, _, err = _carebus(
        capsys, "replay", "--stream", "ERP", "--from-seq", "1", "--into", "poster"
    )
    assert code == 2
    assert err.startswith(
        "carebus replay: ERP also feeds archiver (every subject): the copies would reach it as "
        "well as erp-poster."
    )


def test_a_stage_that_does_not_take_its_backlog_fails_the_replay_saying_where_to_resume(
    suite: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url, db = suite
    _provision_with(capsys, url, _billing(6))

    async def replay() -> use_case.Result:
        nc = await nats.connect(url)
        conn = await asyncpg.connect(db)
        try:
            js = nc.jetstream()
            planned = await use_case.plan(js, Request("BILLING", "validator", Window(from_seq=1)))
            # No validator runs: its six originals wait, and the copies would add to them.
            settings = Settings(chunk_size=2, max_backlog=7, patience_s=1.0)
            progress = Lines(io.StringIO())
            return await use_case.replay(js, conn, planned, "ops", progress, settings)
        finally:
            await conn.close()
            await nc.close()

    result = asyncio.run(replay())
    assert result.outcome == "failed"
    # The first chunk went out; the second was read and waited for room in vain.
    assert (result.tally.read, result.tally.republished, result.tally.last_seq) == (4, 2, 2)
    assert result.error == (
        f"StageNotTaking: {VALIDATOR_BILLING} kept more than 7 messages waiting for 1 s: "
        "is the stage running? (carebus status)"
    )
    (recorded,) = asyncio.run(_replays(db))
    assert (recorded.outcome, recorded.error, recorded.last_seq) == ("failed", result.error, 2)
    assert recorded.finished_at is not None

    assert result_line(result).endswith("; resume with --from-seq 3")


def test_a_replay_stopped_midway_is_recorded_as_interrupted_with_where_it_got(
    suite: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url, db = suite
    _provision_with(capsys, url, _billing(5))

    class StopAfterFirstChunk(Lines):
        """Ctrl-C as the first chunk is confirmed (asyncio.run cancels the task)."""

        def update(self, done: int) -> None:
            super().update(done)
            asyncio.current_task().cancel()  # type: ignore[union-attr]

    async def replay() -> None:
        nc = await nats.connect(url)
        conn = await asyncpg.connect(db)
        try:
            js = nc.jetstream()
            planned = await use_case.plan(js, Request("BILLING", "validator", Window(from_seq=1)))
            progress = StopAfterFirstChunk(io.StringIO())
            await use_case.replay(js, conn, planned, "ops", progress, Settings(chunk_size=2))
        finally:
            await conn.close()
            await nc.close()

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(replay())
    (recorded,) = asyncio.run(_replays(db))
    assert (recorded.outcome, recorded.republished, recorded.last_seq) == ("interrupted", 2, 2)
    assert recorded.error == "stopped before the end (Ctrl-C)"
