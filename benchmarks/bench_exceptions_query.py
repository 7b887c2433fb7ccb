"""`make bench`: what the exceptions API's list costs on a large store (docs/decisions/019).

200,000 records with a 500-byte input each on a PostgreSQL of this benchmark's own; per
filter, the count of what matches plus the second page of 50 (after a cursor), median of 5.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import asyncpg

from benchmarks.bench_report import report
from carebus_shared.db.migrations import load_migrations, migrate
from carebus_shared.devstack.postgres_server import PostgresServer
from carebus_shared.exceptions import query, store

RECORDS = 200_000
_SEED = """
INSERT INTO carebus_exceptions.exception_record
    (dedupe_key, stage, category, reason, message, source, site, recorded_at, status, raw)
SELECT 'k' || g,
       (ARRAY['masterdata-validator-scheduling', 'masterdata-validator-billing', 'mapper',
              'erp-poster', 'scheduling_adapter'])[1 + g % 5],
       (ARRAY['masterdata', 'masterdata', 'mapping', 'erp_rejection', 'contract'])[1 + g % 5],
       'r' || (g % 40), 'm', 'jetstream', 'SITE' || (g % 50), now() - make_interval(secs => g),
       (ARRAY['open', 'redriven', 'discarded', 'redriven'])[1 + g % 4], repeat('x', 500)::bytea
  FROM generate_series(1, $1) g
"""
FILTERS = {
    "none": query.ExceptionFilter(),
    "site": query.ExceptionFilter(site="SITE7"),
    "stage (contract stage)": query.ExceptionFilter(stage="masterdata_validator"),
    "status open": query.ExceptionFilter(status="open"),
}


async def test_exceptions_query(tmp_path: Path) -> None:
    server = PostgresServer(tmp_path / "pg", durable=False)
    server.start()
    try:
        conn = await asyncpg.connect(server.dsn)
        await migrate(conn, store.OWNER, load_migrations("carebus_shared.exceptions"))
        await conn.execute(_SEED, RECORDS)
        await conn.execute("ANALYZE carebus_exceptions.exception_record")
        figures: dict[str, object] = {"records": RECORDS}
        for name, flt in FILTERS.items():
            first = await query.search(conn, flt, None, 50)
            times = []
            for _ in range(5):
                started = time.perf_counter()
                page = await query.search(conn, flt, first.next_cursor, 50)
                times.append((time.perf_counter() - started) * 1000)
            figures[f"{name}: matching"] = page.total
            figures[f"{name}: page 2 ms"] = statistics.median(times)
        await conn.close()
    finally:
        server.stop()
    report("exceptions_query", figures)
