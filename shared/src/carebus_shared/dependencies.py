"""Errors that mean a dependency (NATS, JetStream, PostgreSQL) failed, not the input.

The sender must retry (no ACK, HTTP 503) and a stage redelivers its whole batch; the input is
neither accepted nor rejected. Any other error is the input's (or a bug's), never a reason
to invite endless retries.
"""

from __future__ import annotations

from typing import Final

import asyncpg
import nats.errors

from carebus_shared.jetstream.publish import PublishFailed


class DependencyUnavailable(RuntimeError):
    """NATS or PostgreSQL is not connected (yet, or any more)."""


DEPENDENCY_ERRORS: Final = (
    DependencyUnavailable,
    PublishFailed,
    nats.errors.Error,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    # A pooled connection a server crash left mid-operation ("cannot switch to state N;
    # another operation is in progress"): the pool terminates it on release.
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)
