"""PostgreSQL roles: one owner of every carebus object, one login role per service
(docs/decisions/026).

The owner (``carebus_owner``, no login) owns the schemas, tables, triggers and functions;
`carebus provision` applies the migrations as it. Each service logs in as its own role,
named like its schema, which may read and write its own schema's tables (never alter or drop
them), add to the shared exception store and append to the audit log. Append-only tables a
service writes (the poster's ledger) take INSERT and SELECT only: their refusing triggers
belong to the owner, which no service role holds.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

OWNER_ROLE = "carebus_owner"

# What a service may do on its own schema's tables: no TRIGGER, no REFERENCES, no DDL.
_OWN_TABLES = "SELECT, INSERT, UPDATE, DELETE, TRUNCATE"
_APPEND_ONLY = "SELECT, INSERT"

# The shared schemas every service writes (the exception store, the audit log), the client
# store it reads, and the migrations' tracking table it reads at start to see that nothing is
# pending.
_SHARED_GRANTS = (
    "GRANT USAGE ON SCHEMA carebus_exceptions TO {role}",
    "GRANT SELECT, INSERT, UPDATE ON carebus_exceptions.exception_record TO {role}",
    # History is appended, never rewritten (its trigger refuses updates anyway).
    "GRANT SELECT, INSERT ON carebus_exceptions.exception_action TO {role}",
    "GRANT USAGE ON ALL SEQUENCES IN SCHEMA carebus_exceptions TO {role}",
    "GRANT USAGE ON SCHEMA carebus_audit TO {role}",
    # Append only: the head is locked and moved forward, entries are inserted, not read.
    "GRANT INSERT ON carebus_audit.entry TO {role}",
    "GRANT SELECT, UPDATE ON carebus_audit.head TO {role}",
    "GRANT SELECT ON public.carebus_migrations TO {role}",
    # Every service checks the credentials its callers send (docs/decisions/023); only
    # `carebus clients` (the administrator) adds or revokes them.
    "GRANT USAGE ON SCHEMA carebus_auth TO {role}",
    "GRANT SELECT ON carebus_auth.client TO {role}",
)


@dataclass(frozen=True)
class ServiceRole:
    """A service's login role and what it may touch."""

    role: str
    schema: str
    # Tables of its schema it may only add to and read (e.g. the ledger).
    append_only: tuple[str, ...] = ()
    # Other schemas' tables it reads: (schema, table).
    reads: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def grants(self) -> list[str]:
        role, schema = _ident(self.role), _ident(self.schema)
        statements = [
            f"GRANT USAGE ON SCHEMA {schema} TO {role}",
            # Revoked first so that a privilege a previous arrangement gave does not linger.
            f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role}",
            f"GRANT {_OWN_TABLES} ON ALL TABLES IN SCHEMA {schema} TO {role}",
            f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
        ]
        for table in self.append_only:
            statements.append(f"REVOKE ALL ON {schema}.{_ident(table)} FROM {role}")
            statements.append(f"GRANT {_APPEND_ONLY} ON {schema}.{_ident(table)} TO {role}")
        for other_schema, table in self.reads:
            statements.append(f"GRANT USAGE ON SCHEMA {_ident(other_schema)} TO {role}")
            statements.append(f"GRANT SELECT ON {_ident(other_schema)}.{_ident(table)} TO {role}")
        return statements + [grant.format(role=role) for grant in _SHARED_GRANTS]


def _ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


async def ensure_owner(conn: Any) -> None:
    """The owner role (no login), allowed to create schemas in this database; the
    administrator connected may act as it (SET ROLE) to apply migrations."""
    await _ensure_role(conn, OWNER_ROLE, login=False)
    database = await conn.fetchval("SELECT current_database()")
    await conn.execute(f"GRANT CREATE ON DATABASE {_ident(database)} TO {_ident(OWNER_ROLE)}")
    is_superuser = await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    if not is_superuser:  # a managed database's administrator: SET ROLE needs membership
        await conn.execute(f"GRANT {_ident(OWNER_ROLE)} TO CURRENT_USER")


async def ensure_service_role(conn: Any, service: ServiceRole, password: str | None) -> str:
    """Create or update ``service``'s login role and its grants; what was done, in words."""
    created = await _ensure_role(conn, service.role, login=True)
    if password is not None:
        await conn.execute(
            await conn.fetchval(
                "SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', $1::text, $2::text)",
                service.role,
                password,
            )
        )
    for statement in service.grants():
        await conn.execute(statement)
    state = "created" if created else "granted"
    return state + ("" if password is not None else " (password unchanged)")


async def _ensure_role(conn: Any, role: str, *, login: bool) -> bool:
    if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
        return False
    await conn.execute(f"CREATE ROLE {_ident(role)} {'LOGIN' if login else 'NOLOGIN'}")
    return True


async def adopt_schema(conn: Any, schema: str) -> int:
    """Make the owner role own ``schema`` and everything in it (objects a service or an
    administrator created before roles existed); how many objects changed hands."""
    owner = _ident(OWNER_ROLE)
    changed = 0
    schema_owner = await conn.fetchval(
        "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1", schema
    )
    if schema_owner is None:
        return 0
    if schema_owner != OWNER_ROLE:
        await conn.execute(f"ALTER SCHEMA {_ident(schema)} OWNER TO {owner}")
        changed += 1
    # Tables first: their indexes, identity and serial sequences follow them.
    relations = await conn.fetch(
        """
        SELECT c.oid::regclass::text AS name, c.relkind::text AS relkind
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
           AND pg_get_userbyid(c.relowner) <> $2
           AND NOT EXISTS (SELECT 1 FROM pg_depend d
                            WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                              AND d.deptype IN ('a', 'i'))
         ORDER BY c.relkind = 'S'
        """,
        schema,
        OWNER_ROLE,
    )
    for relation in relations:
        kind = _RELATION_KINDS[relation["relkind"]]
        await conn.execute(f"ALTER {kind} {relation['name']} OWNER TO {owner}")
        changed += 1
    routines = await conn.fetch(
        """
        SELECT p.oid::regprocedure::text AS name, p.prokind::text AS prokind
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = $1 AND pg_get_userbyid(p.proowner) <> $2
        """,
        schema,
        OWNER_ROLE,
    )
    for routine in routines:
        kind = "PROCEDURE" if routine["prokind"] == "p" else "FUNCTION"
        await conn.execute(f"ALTER {kind} {routine['name']} OWNER TO {owner}")
        changed += 1
    return changed


_RELATION_KINDS = {
    "r": "TABLE",
    "p": "TABLE",
    "v": "VIEW",
    "m": "MATERIALIZED VIEW",
    "S": "SEQUENCE",
    "f": "FOREIGN TABLE",
}


def password_env(role: str) -> str:
    """The environment variable `carebus provision` reads ``role``'s password from."""
    return f"CAREBUS_PG_PASSWORD_{role.upper()}"


def passwords_from_env(roles: Iterable[str], env: Mapping[str, str]) -> dict[str, str]:
    return {role: env[password_env(role)] for role in roles if env.get(password_env(role))}


def database_url_as(database_url: str, role: str, password: str | None) -> str:
    """``database_url`` logging in as ``role`` (same host, database and query: sslmode and
    sslrootcert carry over)."""
    parts = urllib.parse.urlsplit(database_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    user = urllib.parse.quote(role, safe="")
    secret = f":{urllib.parse.quote(password, safe='')}" if password else ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}{secret}@{host}"))
