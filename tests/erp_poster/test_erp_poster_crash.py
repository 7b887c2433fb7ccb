"""SIGKILL between the posting's commit and the ack, again and again: nothing posted twice.

The doomed posters run ``fault_injection`` (the real poster with a kill hook after commit),
as ``python -m tests.erp_poster.fault_injection`` with the repository root on PYTHONPATH."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext

from carebus_shared.devstack.nats_server import NatsServer
from tests.erp_poster.fault_injection import KILL_AFTER_ENV, MODULE
from tests.support.erp_poster import (
    Sandbox,
    consumer_idle,
    eventually,
    journal,
    migrated,
    poster_process,
    private_database,
    provision_short,
    publish_journals,
    query,
    scalar,
    subject_counts,
    wait_ready,
)


def _with_repo_root() -> str:
    """The child's PYTHONPATH: the repository root (for ``tests``) before what it had."""
    return os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)


BATCH = 25
KILL_AFTER = 3  # commits per life, then it dies before acking
# A life books up to KILL_AFTER + 1 batches (with the ledger a second batch's commit can land
# while the third's kill runs): 300 journals leave the third life 100 new ones at least, so it
# dies too (with 200, two lives could book them all and the third only redeliveries; CI saw it).
JOURNALS = 3 * (KILL_AFTER + 1) * BATCH
MAX_LIVES = 12
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def erp_db(database_url: str) -> AsyncIterator[str]:
    async for dsn in private_database(database_url):
        yield dsn


async def _entries(connector: str, erp_db: str) -> int:
    if connector == "ledger":
        sql = "SELECT count(*) FROM carebus_erp_poster.journal_entry"
    else:
        sql = "SELECT count(*) FROM carebus_erp_sandbox.journal"
    return int(await scalar(erp_db, sql))


@pytest.mark.slow
@pytest.mark.parametrize("connector", ["ledger", "http"])
async def test_sigkill_after_commit_before_ack_never_posts_a_journal_twice(
    connector: str, private_nats: NatsServer, erp_db: str, tmp_path: Path
) -> None:
    # Deliveries enough for every life: each kill burns one of every journal in its batches
    # in flight (two with the ledger), and a journal that used up its allowance goes to the
    # exception store, never posted (a CI run's life 10 got that advisory and then had
    # nothing left to do; what max_deliver does is tested elsewhere).
    await provision_short(private_nats.url, backoff_s=(1.5, 1.5, 3.0), max_deliver=4 * MAX_LIVES)
    await migrated(erp_db)
    nc = await nats.connect(private_nats.url)
    js: JetStreamContext = nc.jetstream()
    sandbox = Sandbox(erp_db, tmp_path / "sandbox.log", rate_limit=0, confirm_delay_s=0)
    settings: dict[str, str | int | float] = {"batch_size": BATCH, "connector": connector}
    if connector == "http":
        await sandbox.start()
        settings["erp_base_url"] = sandbox.url
    try:
        await publish_journals(js, [journal(f"kill-{connector}", i) for i in range(JOURNALS)])
        kills = 0
        for life in range(MAX_LIVES):
            if await _entries(connector, erp_db) == JOURNALS:
                break
            doomed = poster_process(
                private_nats.url, erp_db, tmp_path / f"poster-{life}.log", module=MODULE,
                env={"PYTHONPATH": _with_repo_root(), KILL_AFTER_ENV: str(KILL_AFTER)}, **settings,
            ).start()  # fmt: skip
            assert doomed.process is not None

            async def died_or_done(process: subprocess.Popen[bytes] = doomed.process) -> bool:
                if process.poll() is not None:
                    return True
                return await _entries(connector, erp_db) == JOURNALS and await consumer_idle(js)

            try:
                await eventually(died_or_done, 60, f"life {life} to die or finish")
            except AssertionError:
                doomed.kill()  # not left running after the test
                raise
            if doomed.process.poll() is None:
                doomed.kill()  # everything was handled before its last commit came
                break
            assert doomed.process.returncode == -signal.SIGKILL
            kills += 1
        assert kills >= 3, "the poster must have been killed repeatedly"
        assert await _entries(connector, erp_db) == JOURNALS

        # A healthy process now handles what the dead ones committed and never acknowledged.
        survivor = poster_process(
            private_nats.url, erp_db, tmp_path / "poster-final.log", **settings
        ).start()
        try:
            await wait_ready(survivor)
            await eventually(lambda: consumer_idle(js), 60, "every request acknowledged")
            count = await subject_counts(js, "erp.journal.confirmed.v1.>")
        finally:
            survivor.kill()

        assert await _entries(connector, erp_db) == JOURNALS
        # Redeliveries of committed requests happened, and each found its inbox row.
        redelivered = await scalar(
            erp_db, "SELECT coalesce(sum(redeliveries), 0) FROM carebus_erp_poster.inbox"
        )
        assert redelivered > 0
        assert await scalar(erp_db, "SELECT count(*) FROM carebus_erp_poster.inbox") == JOURNALS
        assert await subject_counts(js, "erp.journal.posted.v1.>") == JOURNALS
        assert count == JOURNALS
        if connector == "ledger":
            [(entries, distinct, debits)] = await query(
                erp_db,
                "SELECT count(*), count(DISTINCT journal_id), "
                "(SELECT sum(debit_minor) FROM carebus_erp_poster.trial_balance_by_account) "
                "FROM carebus_erp_poster.journal_entry",
            )
            assert (entries, distinct, debits) == (JOURNALS, JOURNALS, JOURNALS * 12_500)
        else:
            # The ERP saw each journal once: a redelivery never even reached it again.
            [(journals, distinct, replays)] = await query(
                erp_db,
                "SELECT count(*), count(DISTINCT journal_id), coalesce(sum(replays), 0) "
                "FROM carebus_erp_sandbox.journal",
            )
            assert (journals, distinct, replays) == (JOURNALS, JOURNALS, 0)
    finally:
        sandbox.stop()
        await nc.close()
