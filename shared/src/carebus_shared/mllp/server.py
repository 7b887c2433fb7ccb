"""Asyncio MLLP listener shared by the SIU and DFT adapters.

Per connection, messages are handled strictly in order: the next frame is not handed to
the handler before the previous ACK was written, which is what original-mode HL7
senders expect.  Connections are independent of each other.

The handler returns the ACK bytes and owns the AA/AE/AR decision.  If it raises or
exceeds ``handler_timeout``, **no ACK is sent** and the connection stays open.  Why not
an AE: AE means "your message is wrong" and many senders (and their operators) park
such a message as failed; a transient outage (JetStream down) would then lose data.  A
missing ACK is the one outcome every sender treats as "retry": it times out and
re-sends, and the re-send is harmless because canonical events are de-duplicated by the
message control id.  The metric ``result="no_ack_error"`` makes these visible.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from carebus_shared.hl7.ack import ACK_REJECT, ack_code_of, build_ack, salvage_header
from carebus_shared.hl7.errors import VALUE_TOO_LONG, Hl7Error
from carebus_shared.mllp.framing import Frame, MllpDecoder, OversizedFrame, frame
from carebus_shared.mllp.metrics import MllpMetrics, default_metrics
from carebus_shared.tracing import export
from carebus_shared.tracing.context import activate

MllpHandler = Callable[[bytes], Awaitable[bytes]]

log = logging.getLogger(__name__)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class MllpLimits:
    max_message_bytes: int = 1_048_576
    idle_timeout: float = 300.0
    handler_timeout: float = 30.0
    read_chunk: int = 65_536
    # From the first byte of unfinished input to a complete frame: a peer trickling a byte
    # now and then never trips the idle timeout, this deadline it does.
    message_deadline: float = 60.0
    # Connections open at once; one more is closed at once (and counted).
    max_connections: int = 200
    tls_handshake_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class MllpPeers:
    """Who may connect, and how: TLS (mutual when the context requires client certificates)
    and an allow-list of networks (empty: anyone)."""

    tls: ssl.SSLContext | None = None
    allowed: tuple[Network, ...] = ()

    def allows(self, host: str) -> bool:
        if not self.allowed:
            return True
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in network for network in self.allowed)


def parse_networks(text: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 192.168.1.7"`` -> networks; raises ValueError naming a bad entry."""
    networks = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"not an IP network: {item!r}") from None
    return tuple(networks)


def server_tls_context(cert: str, key: str, client_ca: str = "") -> ssl.SSLContext:
    """The listener's TLS context; with ``client_ca`` every peer must present a certificate
    that CA signed (mutual TLS)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca:
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


@dataclass(eq=False)
class _Connection:
    task: asyncio.Task[None]
    busy: bool = False


class MllpServer:
    """``async with MllpServer(handler, port=0) as server: ... server.port``."""

    def __init__(
        self,
        handler: MllpHandler,
        *,
        host: str = "127.0.0.1",
        port: int = 2575,
        limits: MllpLimits | None = None,
        metrics: MllpMetrics | None = None,
        peers: MllpPeers | None = None,
    ) -> None:
        self._handler = handler
        self._peers = peers or MllpPeers()
        self._host = host
        self._port = port
        self._limits = limits or MllpLimits()
        self._metrics = metrics or default_metrics()
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._closing = False

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._closing = False
        self._server = await asyncio.start_server(self._on_connect, self._host, self._port)
        log.info("MLLP listening on %s:%d", self._host, self.port)

    async def close(self, grace: float = 10.0) -> None:
        """Stop accepting, let in-flight messages finish (up to ``grace`` s), then close."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            if not conn.busy:
                conn.task.cancel()
        tasks = [c.task for c in self._connections]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> MllpServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        conn = _Connection(task)
        if self._closing:
            writer.close()
            return
        refusal = self._refusal(writer)
        if refusal is None and self._peers.tls is not None:
            refusal = await self._start_tls(writer)
        if refusal is not None:
            self._metrics.refused(refusal)
            writer.transport.abort()
            return
        self._connections.add(conn)
        self._metrics.connections.inc()
        self._metrics.open_connections.inc()
        try:
            await self._serve(conn, reader, writer)
        except asyncio.CancelledError:
            pass  # server shutdown
        except (ConnectionError, OSError) as exc:
            log.info("MLLP connection ended: %s", type(exc).__name__)
        finally:
            self._connections.discard(conn)
            self._metrics.open_connections.dec()
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    def _refusal(self, writer: asyncio.StreamWriter) -> str | None:
        """Why this connection is refused before a byte is read, if it is."""
        peer = writer.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        if not self._peers.allows(host):
            log.warning("MLLP connection refused: peer not on the allow-list")
            return "peer"
        if len(self._connections) >= self._limits.max_connections:
            log.warning("MLLP connection refused: %d already open", len(self._connections))
            return "limit"
        return None

    async def _start_tls(self, writer: asyncio.StreamWriter) -> str | None:
        # After the allow-list and the cap: a refused peer costs no handshake.
        assert self._peers.tls is not None
        try:
            await writer.start_tls(
                self._peers.tls, ssl_handshake_timeout=self._limits.tls_handshake_timeout
            )
        except (ssl.SSLError, ConnectionError, OSError, TimeoutError) as exc:
            log.info("MLLP TLS handshake failed: %s", type(exc).__name__)
            return "tls"
        return None

    async def _serve(
        self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        limits = self._limits
        decoder = MllpDecoder(limits.max_message_bytes)
        # When the first byte not yet part of a complete frame arrived (None: nothing pending).
        pending_since: float | None = None
        while not self._closing:
            wait = limits.idle_timeout
            if pending_since is not None:
                wait = min(wait, pending_since + limits.message_deadline - time.monotonic())
            try:
                # asyncio.timeout runs the read in this task; wait_for would wrap every read
                # (in practice every message) in a task of its own.
                async with asyncio.timeout(max(wait, 0.0)):
                    data = await reader.read(limits.read_chunk)
            except TimeoutError:
                if pending_since is not None and wait < limits.idle_timeout:
                    self._metrics.message_deadlines.inc()
                    log.info("MLLP message unfinished after %.0f s, closing", wait)
                else:
                    self._metrics.idle_timeouts.inc()
                    log.info("MLLP connection idle for %.0f s, closing", limits.idle_timeout)
                return
            if not data:
                return
            if pending_since is None:
                pending_since = time.monotonic()
            garbage_before = decoder.garbage_bytes
            events = decoder.feed(data)
            if events:
                pending_since = time.monotonic() if decoder.mid_frame else None
            if decoder.garbage_bytes > garbage_before:
                self._metrics.garbage_bytes.inc(decoder.garbage_bytes - garbage_before)
            for event in events:
                conn.busy = True
                try:
                    keep_open = await self._on_event(event, writer)
                finally:
                    conn.busy = False
                if not keep_open or self._closing:
                    return

    async def _on_event(self, event: Frame | OversizedFrame, writer: asyncio.StreamWriter) -> bool:
        if isinstance(event, OversizedFrame):
            self._metrics.oversized_frames.inc()
            header = salvage_header(event.head)
            if not header.readable:
                log.warning("oversized MLLP frame without a readable MSH: closing connection")
                return False
            error = Hl7Error(
                VALUE_TOO_LONG,
                "MSH",
                f"message exceeds {self._limits.max_message_bytes} bytes",
                reason="message_too_large",
            )
            nak = build_ack(header, ACK_REJECT, error=error)
            self._metrics.message("ar")
            writer.write(frame(nak))
            await writer.drain()
            return True
        started = time.perf_counter()
        ack = await self._call_handler(event.payload)
        if ack is not None:
            writer.write(frame(ack))
            await writer.drain()
        self._metrics.handle_seconds.observe(time.perf_counter() - started)
        return True

    async def _call_handler(self, payload: bytes) -> bytes | None:
        # MLLP carries no headers: each message starts a trace of its own.
        ctx, span = export.start_span("mllp message", None)
        outcome = "no_ack_error"
        try:
            with activate(ctx):
                ack = await self._handled(payload)
            outcome = "no_ack" if ack is None else (ack_code_of(ack) or "unknown").lower()
            return ack
        finally:
            if span is not None:
                span.set_attributes({"carebus.outcome": outcome})
                span.end()

    async def _handled(self, payload: bytes) -> bytes | None:
        try:
            async with asyncio.timeout(self._limits.handler_timeout):
                ack = await self._handler(payload)
        except TimeoutError:
            self._metrics.message("no_ack_timeout")
            log.error("MLLP handler timed out; no ACK sent, the sender will retry")
            return None
        except Exception:
            self._metrics.message("no_ack_error")
            log.exception("MLLP handler failed; no ACK sent, the sender will retry")
            return None
        self._metrics.message((ack_code_of(ack) or "unknown").lower())
        return ack
