"""What the demo compares besides the ledger: the pipeline's exceptions (the exception store
holds the ops console's and the outbound feeds' records too, which the oracle's pipeline
model does not count)."""

from __future__ import annotations

import asyncpg

from carebus_ops.domain.charge_watch import ChargeWait, Overdue, record_for
from carebus_scenario.observe import EPOCH, Observation, read_exceptions
from carebus_shared.db.migrations import load_migrations, migrate
from carebus_shared.exceptions import store as exception_store
from carebus_shared.exceptions.store import ExceptionRecord
from carebus_shared.jetstream.topology import OUTBOUND_BILLING_READINESS, VALIDATOR_SCHEDULING
from tests.support.mapper import fresh_database


def _record(key: str, stage: str, category: str, reason: str, site: str) -> ExceptionRecord:
    return ExceptionRecord(key, stage, category, reason, "-", "test", site=site)


async def test_the_exceptions_compared_are_the_pipelines_only(database_url: str) -> None:
    async with fresh_database(database_url) as url:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn, exception_store.OWNER, load_migrations("carebus_shared.exceptions"))
            parked = _record("v1", VALIDATOR_SCHEDULING, "masterdata", "unknown_provider", "S1")
            # The ops console's work item (a watch, not a failed input) and an outbound
            # feed's dead letter (off the pipeline; the outbound check counts deliveries).
            watch = record_for(Overdue("A-1", "S1", "ev-1"), ChargeWait(0.0))
            refused = _record(
                "o1", OUTBOUND_BILLING_READINESS, "receiver_rejection", "receiver_reject", "S1"
            )
            await exception_store.record_all(conn, [parked, watch, refused])
            obs = Observation()
            await read_exceptions(conn, obs, EPOCH)
        finally:
            await conn.close()
    assert obs.exceptions == {
        ("masterdata_validator_scheduling", "masterdata", "unknown_provider"): 1
    }
    assert obs.exceptions_by_site == {("S1", "unknown_provider"): 1}
