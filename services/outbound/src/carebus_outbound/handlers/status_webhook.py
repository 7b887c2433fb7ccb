"""Status back, step two: each status event posted to the configured webhook, as its
contract's own JSON, under its control id (Idempotency-Key)."""

from __future__ import annotations

from nats.aio.msg import Msg

from carebus_contracts.registry import HEADER_EVENT_TYPE, HEADER_SCHEMA_VERSION
from carebus_contracts.subjects import site_of
from carebus_outbound.adapters.http_client import HttpSender
from carebus_outbound.domain.delivery import Answer
from carebus_outbound.handlers.deliver import Owed
from carebus_shared.jetstream.stage import Reject

FEED = "status-webhook"
CHANNEL = "webhook"


class StatusWebhook:
    def __init__(self, http: HttpSender, url: str) -> None:
        self._http, self._url = http, url

    def build(self, msg: Msg) -> list[Owed] | Reject:
        headers = msg.headers or {}
        event_id = headers.get("Nats-Msg-Id")
        site = site_of(msg.subject)
        if not event_id:
            return Reject("contract", "no_event_id", "a status event without Nats-Msg-Id")
        body = msg.data

        async def send(control_id: str) -> Answer:
            return await self._http.post(
                self._url,
                body,
                {
                    "Content-Type": "application/json",
                    "Idempotency-Key": control_id,
                    "Carebus-Event-Type": headers.get(HEADER_EVENT_TYPE, ""),
                    "Carebus-Schema-Version": headers.get(HEADER_SCHEMA_VERSION, ""),
                },
            )

        return [Owed(event_id, site, CHANNEL, send)]
