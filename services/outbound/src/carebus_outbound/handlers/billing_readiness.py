"""Billing readiness: which channel a completed visit goes by, and the message it becomes."""

from __future__ import annotations

from collections.abc import Callable

from nats.aio.msg import Msg

from carebus_contracts import decode_as
from carebus_contracts.registry import ContractDecodeError, UnknownContractError
from carebus_contracts.validated import ValidatedAppointmentCompleted
from carebus_outbound.adapters.http_client import HttpSender
from carebus_outbound.adapters.mllp_client import MllpClient
from carebus_outbound.domain import billing_readiness as br
from carebus_outbound.domain.delivery import Answer
from carebus_outbound.handlers.deliver import Owed
from carebus_shared.jetstream.stage import Reject


class BillingReadiness:
    def __init__(
        self,
        channel_for: Callable[[str], str],
        mllp: MllpClient,
        http: HttpSender,
        fhir_url: str,
        receiver: br.Receiver,
    ) -> None:
        self._channel_for = channel_for
        self._mllp, self._http, self._fhir_url = mllp, http, fhir_url
        self._receiver = receiver

    def build(self, msg: Msg) -> list[Owed] | Reject:
        headers = msg.headers or {}
        try:
            event = decode_as(
                ValidatedAppointmentCompleted, msg.data, headers.get("Carebus-Schema-Version")
            )
        except ContractDecodeError as exc:
            return Reject("contract", "undecodable_event", str(exc), path=exc.path)
        except UnknownContractError as exc:
            return Reject("contract", "unknown_contract", str(exc))
        channel = self._channel_for(event.site)
        if channel == "off":
            return []  # this site's billing system is not told (acknowledged)

        async def send(control_id: str) -> Answer:
            if channel == "fhir":
                return await self._http.fhir_create(
                    self._fhir_url,
                    br.encounter(event),
                    if_none_exist=br.conditional_on(event),
                    key=control_id,
                )
            return await self._mllp.send(br.adt_a03(event, control_id, self._receiver))

        return [Owed(event.event_id, event.site, channel, send)]
