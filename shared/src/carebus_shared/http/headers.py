"""Security headers on every response (ASGI middleware), before anything else answers.

The console's pages get a strict Content-Security-Policy (its own scripts and styles only);
other responses only forbid framing, so /schema's documentation pages still load.
"""

from __future__ import annotations

from typing import Any, Final

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

CONSOLE_CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
)
_COMMON: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
_HSTS: Final = (b"strict-transport-security", b"max-age=31536000")


def _is_console(path: str) -> bool:
    return path == "/" or path.startswith("/console")


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        csp = CONSOLE_CSP if _is_console(scope["path"]) else "frame-ancestors 'none'"
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [h for h in _COMMON if h[0] not in present]
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", csp.encode()))
                if b"cache-control" not in present:
                    # Answers may carry patient data: nothing along the way keeps them.
                    headers.append((b"cache-control", b"no-store"))
                if https:
                    headers.append(_HSTS)
                message = {**message, "headers": headers}
            await send(message)

        await self._app(scope, receive, send_with_headers)
