"""The scopes a client may hold, and how a route declares the ones it needs.

Each route names its scopes with ``**requires(...)`` (Litestar ``opt`` plus the OpenAPI
security requirement); one app-wide guard (``guard.py``) checks them. A route that declares
none needs only an authenticated client; ``**PUBLIC`` marks the health probes.
The table, and why it is cut this way, is in docs/decisions/023.
"""

from __future__ import annotations

from typing import Any, Final

APPOINTMENTS_WRITE: Final = "appointments:write"  # scheduling system: SIU/FHIR appointments
CHARGES_WRITE: Final = "charges:write"  # billing system: FHIR billing resources
REMITTANCES_WRITE: Final = "remittances:write"  # payer gateway: X12 835 uploads
EXCEPTIONS_READ: Final = "exceptions:read"  # exception records and quarantine, no payloads
EXCEPTIONS_WRITE: Final = "exceptions:write"  # re-drive, discard, quarantine release
PHI_READ: Final = "phi:read"  # kept inputs and offending values (patient data)
MASTERDATA_READ: Final = "masterdata:read"
MASTERDATA_WRITE: Final = "masterdata:write"
MAPPING_READ: Final = "mapping:read"  # the mapper's preview
JOURNALS_READ: Final = "journals:read"  # the poster's journal status
OPS_READ: Final = "ops:read"  # the console's pages, traces, pipeline, sites
OPS_WRITE: Final = "ops:write"  # rebuild the tracker
METRICS_READ: Final = "metrics:read"  # /metrics (Prometheus)
SANDBOX_ADMIN: Final = "sandbox:admin"  # the ERP sandbox's fault injection
# May name the person it acts for (X-Carebus-On-Behalf-Of): the ops console's own key.
ACTOR_DELEGATE: Final = "actor:delegate"

ALL: Final = (
    APPOINTMENTS_WRITE, CHARGES_WRITE, REMITTANCES_WRITE, EXCEPTIONS_READ, EXCEPTIONS_WRITE,
    PHI_READ, MASTERDATA_READ, MASTERDATA_WRITE, MAPPING_READ, JOURNALS_READ, OPS_READ,
    OPS_WRITE, METRICS_READ, SANDBOX_ADMIN, ACTOR_DELEGATE,
)  # fmt: skip

# Named bundles for `carebus clients add --role`: what each kind of client is given.
ROLES: Final[dict[str, tuple[str, ...]]] = {
    "scheduling-system": (APPOINTMENTS_WRITE,),
    "payer-gateway": (REMITTANCES_WRITE,),
    "billing-system": (CHARGES_WRITE,),
    "operator": (
        EXCEPTIONS_READ, EXCEPTIONS_WRITE, PHI_READ, OPS_READ, MASTERDATA_READ, JOURNALS_READ,
    ),
    "admin": tuple(s for s in ALL if s != ACTOR_DELEGATE),
    "console-service": (EXCEPTIONS_READ, EXCEPTIONS_WRITE, ACTOR_DELEGATE),
    "prometheus": (METRICS_READ,),
}  # fmt: skip

API_KEY_SCHEME: Final = "carebusApiKey"
OAUTH2_SCHEME: Final = "oauth2"
OPT_SCOPES: Final = "scopes"
OPT_PUBLIC: Final = "public"

PUBLIC: Final[dict[str, Any]] = {"opt": {OPT_PUBLIC: True}, "security": []}


def requires(*scopes: str) -> dict[str, Any]:
    """Route keyword arguments: the scopes the guard checks, and the OpenAPI requirement."""
    unknown = set(scopes) - set(ALL)
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(sorted(unknown))}")
    return {
        "opt": {OPT_SCOPES: tuple(scopes)},
        "security": [{API_KEY_SCHEME: []}, {OAUTH2_SCHEME: list(scopes)}],
    }


DESCRIPTIONS: Final[dict[str, str]] = {
    APPOINTMENTS_WRITE: "submit appointments (FHIR, re-drive of scheduling inputs)",
    CHARGES_WRITE: "submit FHIR billing resources",
    REMITTANCES_WRITE: "upload X12 835 remittances",
    EXCEPTIONS_READ: "read exception records and the quarantine (no payloads)",
    EXCEPTIONS_WRITE: "re-drive, discard, release",
    PHI_READ: "see kept inputs and offending values (patient data)",
    MASTERDATA_READ: "read master data",
    MASTERDATA_WRITE: "change master data",
    MAPPING_READ: "preview a mapping",
    JOURNALS_READ: "read a journal's state",
    OPS_READ: "the ops console and its JSON API",
    OPS_WRITE: "rebuild the tracker",
    METRICS_READ: "scrape /metrics",
    SANDBOX_ADMIN: "the ERP sandbox's fault injection",
    ACTOR_DELEGATE: "name the person acted for (X-Carebus-On-Behalf-Of)",
}
