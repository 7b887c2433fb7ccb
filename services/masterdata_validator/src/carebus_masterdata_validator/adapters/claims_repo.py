"""The claim index in PostgreSQL (schema carebus_masterdata_validator; docs/decisions/021).

The first charge of a claim decides its site (later ones are recorded as its charges, never
move it): concurrent replicas indexing the same claim agree, and a redelivery changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from carebus_masterdata_validator.config import SCHEMA
from carebus_masterdata_validator.domain.claim_sites import ClaimCharge, ClaimSite
from carebus_shared import crypto

_INDEX = f"{SCHEMA}.claim_index"
_CHARGES = f"{SCHEMA}.claim_charge"

_LOOKUP = f"SELECT claim_id, site, location_id FROM {_INDEX} WHERE claim_id = ANY($1::text[])"
# First of the batch per claim (by position), unless the claim is indexed already.
_ADD_CLAIMS = f"""
INSERT INTO {_INDEX} (claim_id, site, location_id, patient_ref, first_event_id)
SELECT DISTINCT ON (claim_id) claim_id, site, location_id, patient_ref, event_id
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
       WITH ORDINALITY AS t(claim_id, site, location_id, patient_ref, event_id, n)
 ORDER BY claim_id, n
ON CONFLICT (claim_id) DO NOTHING
RETURNING claim_id
"""
_ADD_CHARGES = f"""
INSERT INTO {_CHARGES} (event_id, claim_id, charge_id, amount_minor, currency)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[])
ON CONFLICT (event_id) DO NOTHING
"""


async def lookup(conn: Any, claim_ids: Iterable[str]) -> dict[str, ClaimSite]:
    """The indexed claims among ``claim_ids`` (one query)."""
    wanted = sorted(set(claim_ids))
    if not wanted:
        return {}
    rows = await conn.fetch(_LOOKUP, wanted)
    return {row["claim_id"]: ClaimSite(row["site"], row["location_id"]) for row in rows}


async def index(conn: Any, charges: Sequence[ClaimCharge]) -> set[str]:
    """Record ``charges``; returns the claims that became known by them."""
    if not charges:
        return set()
    async with conn.transaction():
        rows = await conn.fetch(
            _ADD_CLAIMS,
            [c.claim_id for c in charges],
            [c.site for c in charges],
            [c.location_id for c in charges],
            [crypto.seal_text(c.patient_ref) for c in charges],  # never read back: sealed
            [c.event_id for c in charges],
        )
        await conn.execute(
            _ADD_CHARGES,
            [c.event_id for c in charges],
            [c.claim_id for c in charges],
            [c.charge_id for c in charges],
            [c.amount_minor for c in charges],
            [c.currency for c in charges],
        )
    return {row["claim_id"] for row in rows}
