"""Every HTTP request is handled in a trace: the caller's (a valid ``traceparent`` header)
or a new one; a malformed header starts a new trace and is never an error (W3C §3.2).

A plain ASGI middleware around the app, so that the context is active for the route
handler and everything it awaits (the publish, the exception store).
"""

from __future__ import annotations

from collections.abc import Callable

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from carebus_shared.tracing import export
from carebus_shared.tracing.context import activate, parse

# Probes and scrapes every few seconds would bury the traces worth reading.
_UNTRACED = ("/health", "/metrics")


def trace_requests(service: str) -> Callable[[ASGIApp], ASGIApp]:
    def middleware(app: ASGIApp) -> ASGIApp:
        async def traced(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP or scope["path"].startswith(_UNTRACED):
                await app(scope, receive, send)
                return
            traceparent = tracestate = None
            for name, value in scope["headers"]:
                if name == b"traceparent":
                    traceparent = value.decode("latin-1")
                elif name == b"tracestate":
                    tracestate = value.decode("latin-1")
            method = scope["method"]
            ctx, span = export.start_span(f"{service} {method}", parse(traceparent, tracestate))
            status = 0

            async def send_noting_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            with activate(ctx):
                try:
                    await app(scope, receive, send if span is None else send_noting_status)
                finally:
                    if span is not None:
                        span.set_attributes(
                            {"http.request.method": method, "http.response.status_code": status}
                        )
                        span.end()

        return traced

    return middleware
