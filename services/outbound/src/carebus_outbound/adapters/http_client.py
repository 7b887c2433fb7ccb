"""Posting to a receiver over HTTP, once in effect: every request carries an Idempotency-Key
(the message's control id); a FHIR create is also conditional (If-None-Exist), so a resend
is recognised whichever of the two the server honours."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import msgspec

from carebus_outbound.domain.delivery import Accepted, Answer, Refused, Unreachable

FHIR_JSON = "application/fhir+json"
_RETRYABLE = {408, 425, 429}


class HttpSender:
    def __init__(self, connect_timeout_s: float, answer_timeout_s: float) -> None:
        timeout = httpx.Timeout(answer_timeout_s, connect=connect_timeout_s)
        self._http = httpx.AsyncClient(timeout=timeout)

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        return await self.send("POST", url, body, headers)

    async def send(self, method: str, url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        try:
            response = await self._http.request(method, url, content=body, headers=dict(headers))
        except httpx.TimeoutException:
            return Unreachable("timeout")
        except httpx.TransportError:
            return Unreachable("connect")
        return _answer(response)

    async def fhir_create(
        self, base_url: str, resource: dict[str, Any], *, if_none_exist: str, key: str
    ) -> Answer:
        headers = {
            "Content-Type": FHIR_JSON,
            "Accept": FHIR_JSON,
            "If-None-Exist": if_none_exist,
            "Idempotency-Key": key,
        }
        url = f"{base_url.rstrip('/')}/{resource['resourceType']}"
        return await self.post(url, msgspec.json.encode(resource), headers)

    async def fhir_put(
        self, base_url: str, path: str, resource: dict[str, Any], *, key: str
    ) -> Answer:
        """A conditional update (``PUT {base}/{Type}?identifier=…``): created the first
        time, replaced after; sent twice, one resource."""
        headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON, "Idempotency-Key": key}
        url = f"{base_url.rstrip('/')}/{path}"
        return await self.send("PUT", url, msgspec.json.encode(resource), headers)

    async def aclose(self) -> None:
        await self._http.aclose()


def _answer(response: httpx.Response) -> Answer:
    status = response.status_code
    if 200 <= status < 300:
        return Accepted(str(status))
    if status >= 500 or status in _RETRYABLE:
        return Unreachable("busy", _retry_after(response))
    return Refused(str(status), "receiver_refused", _diagnostics(response))


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _diagnostics(response: httpx.Response) -> str:
    """An OperationOutcome's first diagnostics, else the status line."""
    try:
        body = msgspec.json.decode(response.content)
        issue = body["issue"][0]
        return str(issue.get("diagnostics") or issue.get("code") or response.reason_phrase)
    except (msgspec.DecodeError, KeyError, IndexError, TypeError, AttributeError):
        return response.reason_phrase
