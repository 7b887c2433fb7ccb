"""The lifecycle every carebus service shares, wired by each service's composition root.

Nothing connects at import time. On start-up a background task brings the dependencies up
and keeps trying until they answer (the process is live meanwhile, and not ready):
database migrations, the connection pool, then the NATS connection and the subscribers.
On shutdown, subscribers stop fetching, in-flight batches finish and ack, then we close.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from faststream.nats import NatsBroker, NatsRouter
from litestar import Litestar, Router
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, OAuthFlow, OAuthFlows, SecurityScheme
from litestar.template import TemplateConfig
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from carebus_shared import audit, crypto
from carebus_shared.auth import scopes
from carebus_shared.auth import store as auth_store
from carebus_shared.auth.guard import AuthSettings, HttpAuth
from carebus_shared.auth.limits import ConcurrencyCap
from carebus_shared.config import RuntimeSettings
from carebus_shared.db.migrations import load_migrations, migrate
from carebus_shared.dependencies import DependencyUnavailable
from carebus_shared.exceptions import store as exception_store
from carebus_shared.exceptions.events import exception_event
from carebus_shared.exceptions.store import ExceptionRecord
from carebus_shared.http.guards import refuse_unstorable_parameters
from carebus_shared.http.headers import SecurityHeaders
from carebus_shared.http.problems import EXCEPTION_HANDLERS
from carebus_shared.jetstream.balancer import Balancer
from carebus_shared.jetstream.connection import ConnectionState, make_broker, tls_context
from carebus_shared.jetstream.consumer import Finish, OnBatch, StageConsumer
from carebus_shared.jetstream.publish import PublishFailed, outgoing_for, publish_confirmed
from carebus_shared.jetstream.stage import BatchHandler, BatchState, BatchTally, prepare_batch
from carebus_shared.jetstream.topology import TOPOLOGY, ConsumerSpec
from carebus_shared.runtime.background import BackgroundLoops
from carebus_shared.runtime.health import health_routes
from carebus_shared.runtime.metrics import StageMetrics, new_registry
from carebus_shared.tasks import OVERRUN_MARGIN_S, cancel_and_wait, report_overrun
from carebus_shared.tracing.export import configure_export, shutdown_export
from carebus_shared.tracing.http import trace_requests

log = logging.getLogger("carebus.runtime")

Hook = Callable[[], Awaitable[None]]


async def _keep_session(_: asyncpg.Connection) -> None:
    """Pool release without asyncpg's reset query (unlock all, close all, unlisten, reset
    all): services keep no session state on pooled connections — advisory locks are
    transaction-scoped and migrations run on a connection of their own — so that round trip
    on every release was pure cost (docs/decisions/008). asyncpg still
    rolls back a transaction left open."""


def freeze_start_up_heap() -> None:
    """Take what start-up allocated (modules, the app, clients) out of the garbage
    collector's view. Otherwise every full collection walks all of it, and each pause goes
    straight into tail latency (docs/decisions/007). Reference counting still frees them."""
    gc.collect()
    gc.freeze()


class ServiceRuntime:
    def __init__(
        self,
        service: str,
        settings: RuntimeSettings,
        *,
        migrations: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.service = service
        self.settings = settings
        self.registry = new_registry()
        self.nats_state = ConnectionState()
        self.broker: NatsBroker = make_broker(
            settings.nats_url,
            service,
            self.nats_state,
            self.registry,
            settings.shutdown_grace_s,
            tls=tls_context(settings),
        )
        self._consumers: list[ConsumerSpec] = []
        self._stage_consumers: list[StageConsumer] = []
        self._balancers: list[Balancer] = []
        self._js: JetStreamContext | None = None
        self._js_connection: object = None
        # (owner, package) pairs: the shared client and exception stores and the audit log
        # first, then the service's own.
        self.migrations = [
            (auth_store.OWNER, auth_store.PACKAGE),
            (exception_store.OWNER, "carebus_shared.exceptions"),
            (audit.OWNER, audit.PACKAGE),
            *migrations,
        ]
        audit.set_origin(service)
        # A malformed data key stops the service here, not at its first kept input.
        if settings.data_key or settings.data_key_file:
            given = {crypto.KEY_ENV: settings.data_key, crypto.KEY_FILE_ENV: settings.data_key_file}
            crypto.configure(crypto.load(given))
        log.info(crypto.describe())
        self.stage_metrics = StageMetrics(self.registry)
        self._pool: asyncpg.Pool | None = None
        self._bring_up: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self._stopping = asyncio.Event()
        self.on_started: list[Hook] = []
        self.on_stopping: list[Hook] = []
        # Started after the on_started hooks, stopped after the on_stopping ones.
        self.background = BackgroundLoops()
        self.auth = HttpAuth(lambda: self.pool, auth_settings(settings))

    def include_router(self, router: NatsRouter, consumers: Sequence[ConsumerSpec]) -> None:
        """Add subscribers, naming the provisioned consumers they bind to."""
        self.broker.include_router(router)
        self._consumers.extend(consumers)

    def consume(
        self,
        spec: ConsumerSpec,
        on_batch: OnBatch,
        batch_size: int,
        top_up_s: float,
        linger_s: float = 0.0,
        in_flight: int = 1,
    ) -> StageConsumer:
        """Run ``on_batch`` for each batch pulled from the provisioned consumer ``spec``
        (started once the service is up; stopped, after the batch in hand, on shutdown);
        ``linger_s``, ``in_flight``: see :class:`StageConsumer`."""
        consumer = StageConsumer(
            spec, on_batch, batch_size, top_up_s, linger_s=linger_s, in_flight=in_flight
        )
        self._stage_consumers.append(consumer)
        self._consumers.append(spec)
        return consumer

    def consume_stage(
        self, stage: str, on_batch: OnBatch, batch_size: int, top_up_s: float, in_flight: int = 1
    ) -> list[StageConsumer]:
        """Like :meth:`consume`, for every durable of ``stage`` (an ordered stage's
        partitions, shared with the stage's other replicas by a balancer)."""
        specs = TOPOLOGY.stage(stage)
        balancer = None
        if len(specs) > 1 and specs[0].ordered:
            balancer = Balancer(specs[0].stream, stage, len(specs))
            self._balancers.append(balancer)
            self.stage_metrics.watch_partitions(stage, lambda: len(balancer.held))
        consumers = []
        for spec in specs:
            consumer = StageConsumer(
                spec, on_batch, batch_size, top_up_s, balancer=balancer, in_flight=in_flight
            )
            self._stage_consumers.append(consumer)
            self._consumers.append(spec)
            consumers.append(consumer)
        return consumers

    # -- dependencies -----------------------------------------------------------------
    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise DependencyUnavailable("database pool is not open yet")
        return self._pool

    @property
    def js(self) -> JetStreamContext:
        """One JetStream context per connection: each context opens its own inbox
        subscription for async publish acks, so a fresh one per call would leak them."""
        connection = self.broker._connection
        if connection is None:
            raise DependencyUnavailable("NATS is not connected yet")
        if self._js is None or self._js_connection is not connection:
            self._js, self._js_connection = connection.jetstream(), connection
        return self._js

    async def record_exceptions(self, records: Sequence[ExceptionRecord]) -> None:
        """Store the records (once each), then announce the new ones on EXCEPTIONS."""
        async with self.pool.acquire() as conn, conn.transaction():
            stored = list(
                zip(records, await exception_store.record_all(conn, records), strict=True)
            )
        events = [
            event
            for rec, record_id in stored
            if record_id is not None and (event := exception_event(rec, record_id)) is not None
        ]
        try:
            await publish_confirmed(
                self.js,
                [outgoing_for(e) for e in events],
            )
        except (PublishFailed, RuntimeError):
            # The store already holds them; the stream is the live feed, not the record.
            log.warning("exception events not announced", extra={"count": len(events)})

    async def prepare_stage_batch(
        self,
        stage: str,
        msgs: Sequence[Msg],
        handle: BatchHandler,
        state: BatchState | None = None,
        publish_timeout_s: float = 10.0,
    ) -> Finish:
        """Handle one fetched batch; the returned ``Finish`` publishes its outputs, waits for
        their confirmations, saves ``state`` and acks (a :class:`StageConsumer` runs it while
        it handles the next batch: docs/decisions/033), and counts the batch."""
        started = time.perf_counter()
        prepared = await prepare_batch(
            stage,
            self.js,
            msgs,
            handle,
            self.record_exceptions,
            publish_timeout_s,
            keep_waiting=lambda: not self._stopping.is_set(),
            state=state,
        )

        async def finish(before_ok: bool) -> bool:
            tally = await prepared.finish(before_ok)
            self._count_batch(stage, tally, started)
            return not tally.failed

        return finish

    async def run_stage_batch(self, stage: str, msgs: Sequence[Msg], handle: BatchHandler) -> bool:
        """Handle one fetched batch start to end with the publish-then-ack discipline, and
        count it; whether it finished well."""
        finish = await self.prepare_stage_batch(stage, msgs, handle)
        return await finish(True)

    def _count_batch(self, stage: str, tally: BatchTally, started: float) -> None:
        m = self.stage_metrics
        m.batch_seconds.labels(stage).observe(time.perf_counter() - started)
        m.messages.labels(stage, "forwarded").inc(tally.forwarded)
        m.messages.labels(stage, "rejected").inc(tally.rejected)
        m.messages.labels(stage, "retried").inc(tally.retried)
        m.published.labels(stage).inc(tally.published)
        for reason, count in tally.reasons.items():
            m.rejections.labels(stage, reason).inc(count)

    # -- lifecycle ----------------------------------------------------------------------
    async def _open_database(self) -> None:
        conn = await asyncpg.connect(self.settings.database_url, timeout=5)
        try:
            for owner, package in self.migrations:
                try:
                    applied = await migrate(conn, owner, load_migrations(package))
                except asyncpg.InsufficientPrivilegeError as exc:
                    # A service's own role may not migrate (docs/decisions/026); retried.
                    raise DependencyUnavailable(
                        f"migrations of {owner} pending and this role may not apply them: "
                        "run `carebus provision`"
                    ) from exc
                if applied:
                    log.info("migrations applied", extra={"owner": owner, "applied": applied})
        finally:
            await conn.close()
        # A connection per partition's batch in flight besides the HTTP routes' and background
        # loops' (an ordered stage runs a batch per partition at once: docs/decisions/030).
        size = max(10, len(self._stage_consumers) + 4)
        self._pool = await asyncpg.create_pool(
            self.settings.database_url, min_size=1, max_size=size, timeout=5, reset=_keep_session
        )

    async def _bring_up_loop(self) -> None:
        delay = 0.5
        while self._pool is None:
            try:
                await self._open_database()
            except (OSError, asyncpg.PostgresError, TimeoutError, DependencyUnavailable) as exc:
                log.warning("database not available yet: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        delay = 0.5
        while True:
            try:
                await self.broker.connect()
                break
            except Exception as exc:  # nats-py raises assorted errors while the server is away
                log.warning("nats not available yet: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.nats_state.connected = True
        await self._wait_for_consumers()
        await self.broker.start()
        for balancer in self._balancers:
            balancer.start(lambda: self.js)
        for consumer in self._stage_consumers:
            consumer.start(lambda: self.js)
        for hook in self.on_started:
            await hook()
        await self.background.start()
        freeze_start_up_heap()
        self._started.set()
        log.info("service started")

    async def _wait_for_consumers(self) -> None:
        """Bind only to consumers `carebus provision` made; never auto-create them."""
        missing = [c.durable for c in self._consumers]
        while missing:
            still = []
            for spec in self._consumers:
                try:
                    await self.js.consumer_info(spec.stream, spec.durable)
                except NotFoundError:
                    still.append(f"{spec.stream}/{spec.durable}")
            missing = still
            if missing:
                log.error("consumers missing, run `carebus provision`: %s", ", ".join(missing))
                await asyncio.sleep(2.0)

    async def start(self) -> None:
        configure_export(self.service)
        self._bring_up = asyncio.create_task(self._bring_up_loop(), name="bring-up")

    async def wait_started(self, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            await self._started.wait()

    async def stop(self) -> None:
        self._stopping.set()
        # A stop that overruns its grace names where every task waits (then SIGKILL comes).
        overrun = asyncio.create_task(
            report_overrun(self.settings.shutdown_grace_s + OVERRUN_MARGIN_S), name="overrun"
        )
        try:
            await self._stop_parts()
        finally:
            overrun.cancel()
        log.info("service stopped")

    async def _stop_parts(self) -> None:
        if self._bring_up is not None:
            await cancel_and_wait(self._bring_up)
        for hook in self.on_stopping:
            await hook()
        await self.background.stop()
        await asyncio.gather(
            *(c.stop(self.settings.shutdown_grace_s) for c in self._stage_consumers)
        )
        for balancer in self._balancers:  # after the leases: the others take them at once
            with contextlib.suppress(DependencyUnavailable):
                await balancer.stop(self.js)
        # Stops fetching, waits for in-flight handlers (graceful_timeout), drains the link.
        try:
            await self.broker.stop()
        except Exception:  # e.g. draining a connection that is still reconnecting
            log.warning("broker did not stop cleanly", exc_info=True)
        if self._pool is not None:
            await self._pool.close()
        await asyncio.to_thread(shutdown_export)  # flushes queued spans over HTTP

    # -- readiness ------------------------------------------------------------------------
    async def _check_nats(self) -> None:
        if not self.nats_state.connected or self.broker._connection is None:
            raise ConnectionError("not connected")
        if not self.broker._connection.is_connected:
            raise ConnectionError("reconnecting")
        await self.js.account_info()

    async def _check_database(self) -> None:
        async with self.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    async def _check_started(self) -> None:
        if not self._started.is_set():
            raise RuntimeError("starting")

    # -- HTTP app -----------------------------------------------------------------------
    def http_app(
        self,
        route_handlers: Sequence[HTTPRouteHandler | Router] = (),
        *,
        version: str = "0.1.0",
        template_config: TemplateConfig[Any] | None = None,
    ) -> Litestar:
        checks = {
            "nats": self._check_nats,
            "postgres": self._check_database,
            "subscribers": self._check_started,
        }

        @asynccontextmanager
        async def lifespan(_: Litestar) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        return Litestar(
            route_handlers=[
                *health_routes(checks, self.settings.probe_timeout_s, self.registry),
                *route_handlers,
            ],
            lifespan=[lifespan],
            logging_config=None,  # keep the JSON logging configured at start-up
            exception_handlers=EXCEPTION_HANDLERS,
            before_request=refuse_unstorable_parameters,
            guards=[self.auth.guard],  # every route's credential, scopes and rate
            middleware=[
                SecurityHeaders,
                DefineMiddleware(ConcurrencyCap, limit=self.settings.max_in_flight),
                trace_requests(self.service),
            ],
            openapi_config=openapi_config(self.service, version, self.settings),
            template_config=template_config,  # server-rendered pages (the ops console's)
        )


def auth_settings(settings: RuntimeSettings) -> AuthSettings:
    return AuthSettings(
        cache_s=settings.auth_cache_s,
        rate_per_s=settings.rate_limit_per_s,
        burst=settings.rate_limit_burst,
        jwks_url=settings.auth_jwks_url,
        jwt_issuer=settings.auth_jwt_issuer,
        jwt_audience=settings.auth_jwt_audience,
    )


def openapi_config(service: str, version: str, settings: RuntimeSettings) -> OpenAPIConfig:
    """The document names both ways in (API key, OAuth2 bearer JWT) and every scope."""
    issuer = settings.auth_jwt_issuer.rstrip("/")
    token_url = f"{issuer}/oauth2/token" if issuer else "/oauth2/token"
    schemes: dict[str, Any] = {
        scopes.API_KEY_SCHEME: SecurityScheme(
            type="http",
            scheme="bearer",
            description="A carebus API key (`carebus clients add`): Authorization: Bearer cbk_…",
        ),
        scopes.OAUTH2_SCHEME: SecurityScheme(
            type="oauth2",
            description="An access token (JWT) of the configured issuer, checked by its JWKS",
            flows=OAuthFlows(
                client_credentials=OAuthFlow(token_url=token_url, scopes=dict(scopes.DESCRIPTIONS))
            ),
        ),
    }
    return OpenAPIConfig(
        title=f"carebus {service}",
        version=version,
        components=Components(security_schemes=schemes),
    )
