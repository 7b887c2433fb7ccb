"""HTTP client: re-drive an input an adapter kept through that adapter's own re-drive route.

Only the adapter can re-process what it kept (its parsers, its mapping files), so the
exceptions API forwards the request (``POST {base}/v1/exceptions/{id}/redrive``, the
corrected body, the actor) and relays the adapter's answer, which already speaks the shared
outcome vocabulary. The adapter records the action in the record's history itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import httpx
import msgspec

from carebus_shared.auth.client import acting_for
from carebus_shared.exceptions.redrive import (
    ACTION_HEADER,
    RedriveOutcome,
    RedriveResult,
)

log = logging.getLogger(__name__)

# Where each adapter listens by default (their config.py); a deployment sets its own.
DEFAULT_ADAPTER_URLS: Final = {
    "scheduling_adapter": "http://127.0.0.1:8081",
    "billing_adapter": "http://127.0.0.1:8082",
}


class _Answer(msgspec.Struct):
    outcome: str
    message: str = ""
    source: str | None = None
    event_ids: list[str] = []
    reason: str | None = None
    report: dict[str, Any] = {}


_decode_answer = msgspec.json.Decoder(_Answer).decode
_OUTCOMES: Final = {outcome.value: outcome for outcome in RedriveOutcome}


def parse_adapter_urls(text: str) -> dict[str, str]:
    """``"scheduling_adapter=http://h:8081,billing_adapter=http://h:8082"`` -> a mapping."""
    urls: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        stage, sep, url = item.partition("=")
        if not sep or not stage.strip() or not url.strip().startswith(("http://", "https://")):
            raise ValueError("adapter URLs: expected stage=http(s)://host:port, comma-separated")
        urls[stage.strip()] = url.strip().rstrip("/")
    return urls


class AdapterRedriveClient:
    def __init__(
        self,
        base_urls: Mapping[str, str],
        timeout_s: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        service_key: str | None = None,
    ) -> None:
        self._base_urls = {stage: url.rstrip("/") for stage, url in base_urls.items()}
        # The caller's own key (it holds actor:delegate): the adapter records the person.
        self._key = service_key
        # Creating the client opens nothing; connections are made on the first request.
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), transport=transport)

    def serves(self, stage: str) -> bool:
        return stage in self._base_urls

    async def aclose(self) -> None:
        await self._http.aclose()

    async def redrive(
        self, stage: str, record_id: int, corrected: bytes | None, actor: str, action: str
    ) -> RedriveResult:
        url = f"{self._base_urls[stage]}/v1/exceptions/{record_id}/redrive"
        headers = {**acting_for(self._key, actor), ACTION_HEADER: action}
        try:
            reply = await self._http.post(url, content=corrected or b"", headers=headers)
        except httpx.HTTPError as exc:
            log.warning(
                "re-drive not forwarded: the adapter is unreachable",
                extra={"stage": stage, "error": type(exc).__name__},
            )
            return RedriveResult(
                RedriveOutcome.UNAVAILABLE, record_id, f"the {stage} is unreachable; retry"
            )
        try:
            answer = _decode_answer(reply.content)
            outcome = _OUTCOMES[answer.outcome]
        except (msgspec.DecodeError, KeyError):
            log.warning(
                "re-drive forwarded: the adapter's answer is not a re-drive result",
                extra={"stage": stage, "status": reply.status_code},
            )
            return RedriveResult(
                RedriveOutcome.UNAVAILABLE,
                record_id,
                f"the {stage} answered HTTP {reply.status_code} without a re-drive result",
            )
        return RedriveResult(
            outcome, record_id, answer.message, answer.source, tuple(answer.event_ids),
            answer.reason, answer.report,
        )  # fmt: skip
