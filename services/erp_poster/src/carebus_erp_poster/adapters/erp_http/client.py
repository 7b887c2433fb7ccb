"""An HTTP client for a cloud ERP that behaves well when the ERP does not.

- rate limit: never more requests in any window than the ERP advertises
  (``RateLimit-Policy``), capped by our own ceiling; until the ERP has told us its policy, one
  request per second;
- 429: nothing is sent before its Retry-After has passed (shared by every request), and
  then a single request tries first: a storm of 429s costs one request per Retry-After;
- timeouts, connection errors, 5xx: retried with exponential backoff and full jitter;
- circuit breaker: after repeated failures requests wait (up to the caller's deadline)
  instead of hammering the ERP, and one probe request decides when to close it again.
Every wait is bounded by the caller's deadline; past it, ``ErpUnavailable`` says how long to
wait before trying again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from carebus_erp_poster.adapters.connector import ErpUnavailable
from carebus_erp_poster.adapters.metrics import PosterMetrics
from carebus_erp_poster.domain.circuit_breaker import BreakerState, CircuitBreaker
from carebus_erp_poster.domain.rate_window import SlidingWindow, advertised_policy, retry_after_s
from carebus_shared.backoff import backoff_delay

# Transient answers: the same request may succeed later. Anything else below 500 is final.
_TRANSIENT_4XX = frozenset({401, 403, 408, 425})
_MAX_THROTTLED = 50  # 429s tolerated for one request before it is handed back
_ADMIT_POLL_S = 0.05


@dataclass(frozen=True)
class ClientPolicy:
    timeout_s: float = 10.0
    rate_ceiling_per_s: float = 50.0
    max_attempts: int = 8
    backoff_base_s: float = 0.2
    backoff_max_s: float = 5.0
    max_retry_after_s: float = 30.0
    breaker_failures: int = 5
    breaker_open_s: float = 5.0


class ResilientClient:
    def __init__(
        self,
        base_url: str,
        policy: ClientPolicy,
        metrics: PosterMetrics,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self._metrics = metrics
        self._clock = clock
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(policy.timeout_s),
            headers=dict(headers or {}),
            transport=transport,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )
        self.breaker = CircuitBreaker(
            policy.breaker_failures, policy.breaker_open_s, clock, self._breaker_changed
        )
        # One request per second until the ERP advertises its policy.
        self.window = SlidingWindow(1, 1.0)
        self._policy_known = False
        self._throttled = False  # the last answer was 429: one request at a time tries again
        self._throttle_probe = False
        self._stopping = asyncio.Event()

    def _breaker_changed(self, state: BreakerState) -> None:
        self._metrics.circuit_state.set(int(state))
        if state is BreakerState.OPEN:
            self._metrics.circuit_opened.inc()

    def interrupt(self) -> None:
        self._stopping.set()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        content: bytes,
        headers: Mapping[str, str],
        deadline: float,
    ) -> httpx.Response:
        """A final answer (2xx, or a 4xx that retrying cannot change), or ErpUnavailable."""
        attempts = throttled = 0
        while True:
            await self._admitted(deadline)
            try:
                probe = await self._rate_slot(deadline)
            except ErpUnavailable:
                self.breaker.release_probe()
                raise
            started = self._clock()
            retry_after: float | None = None
            try:
                response = await self._http.request(method, path, content=content, headers=headers)
            except httpx.TimeoutException:
                failure = result = "timeout"
            except httpx.TransportError:
                failure = result = "connection_error"
            else:
                if response.status_code == 429:
                    self._throttled = True
                elif probe:
                    self._throttled = False  # answers to requests sent earlier prove nothing
                self._observe(response)
                status = response.status_code
                retry_after = retry_after_s(response.headers.get("retry-after"), time.time())
                if status == 429:
                    self._metrics.erp_requests.labels(operation, "429").inc()
                    self.breaker.release_probe()  # throttling says nothing about health
                    wait = 1.0 if retry_after is None else retry_after
                    self.window.block_until(self._clock() + wait)
                    throttled += 1
                    if wait > self.policy.max_retry_after_s or throttled > _MAX_THROTTLED:
                        raise ErpUnavailable("throttled by the ERP (429)", wait)
                    continue  # the rate slot waits out the Retry-After
                failure, result = f"HTTP {status}", f"{status // 100}xx"
                if status < 500 and status not in _TRANSIENT_4XX:
                    self.breaker.record_success()
                    self._record(operation, result, started)
                    return response
            finally:
                if probe:
                    self._throttle_probe = False
            self._record(operation, result, started)
            self.breaker.record_failure()
            attempts += 1
            delay = backoff_delay(attempts, self.policy.backoff_base_s, self.policy.backoff_max_s)
            if retry_after is not None:
                delay = max(delay, retry_after)
            if attempts >= self.policy.max_attempts or self._clock() + delay > deadline:
                wait = max(delay, self.breaker.remaining_open_s(), self.policy.backoff_base_s)
                raise ErpUnavailable(f"{failure} after {attempts} attempt(s)", wait)
            await self._sleep(delay)

    def _record(self, operation: str, result: str, started: float) -> None:
        self._metrics.erp_requests.labels(operation, result).inc()
        self._metrics.erp_request_seconds.labels(operation).observe(self._clock() - started)

    def _observe(self, response: httpx.Response) -> None:
        policy = advertised_policy(response.headers)
        ceiling = self.policy.rate_ceiling_per_s
        if policy is not None:
            limit, window_s = policy
            # Our ceiling is per second; express it in the ERP's window.
            self.window.reconfigure(min(limit, max(1, int(ceiling * window_s))), window_s)
            self._policy_known = True
        elif not self._policy_known:
            self.window.reconfigure(max(1, int(ceiling)), 1.0)
            self._policy_known = True

    async def _admitted(self, deadline: float) -> None:
        """Wait until the breaker admits a request (closed, or this is the half-open probe)."""
        while True:
            if self._stopping.is_set():
                raise ErpUnavailable("shutting down", 1.0)
            if self.breaker.try_admit():
                return
            now = self._clock()
            if now >= deadline:
                raise ErpUnavailable(
                    "ERP circuit open", max(self.breaker.remaining_open_s(), _ADMIT_POLL_S)
                )
            await self._sleep(min(_ADMIT_POLL_S, deadline - now))

    async def _rate_slot(self, deadline: float) -> bool:
        """Wait for a send slot; True when this request is the one trying after a 429."""
        while True:
            if self._stopping.is_set():
                raise ErpUnavailable("shutting down", 1.0)
            now = self._clock()
            wait = self.window.wait_s(now)
            if self._throttled and self._throttle_probe:
                wait = max(wait, _ADMIT_POLL_S)
            if wait <= 0:
                self.window.record(now)
                self._throttle_probe = self._throttled
                return self._throttled
            if now + wait > deadline:
                raise ErpUnavailable("ERP rate limit", wait)
            self._metrics.rate_limit_wait_seconds.inc(wait)
            await self._sleep(wait)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when shutting down."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            return
