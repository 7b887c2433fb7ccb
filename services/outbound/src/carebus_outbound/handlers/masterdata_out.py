"""Master data out: each provider, location or service change owed to every subscribed
scheduling system, by its channel (MFN over MLLP, or a FHIR conditional update)."""

from __future__ import annotations

from nats.aio.msg import Msg

from carebus_contracts import decode_message
from carebus_contracts.registry import ContractDecodeError, UnknownContractError
from carebus_outbound.adapters.http_client import HttpSender
from carebus_outbound.adapters.mllp_client import MllpClient
from carebus_outbound.config import Subscriber
from carebus_outbound.domain import masterdata_out as mo
from carebus_outbound.domain.billing_readiness import Receiver
from carebus_outbound.domain.delivery import Answer
from carebus_outbound.handlers.deliver import Owed
from carebus_shared.jetstream.stage import Reject


class MasterdataOut:
    def __init__(
        self, subscribers: list[Subscriber], http: HttpSender, timeouts: tuple[float, float]
    ) -> None:
        self._subscribers = subscribers
        self._http = http
        self._mllp = {
            s.name: MllpClient(*s.host_port, *timeouts) for s in subscribers if s.channel == "hl7"
        }

    def build(self, msg: Msg) -> list[Owed] | Reject:
        try:
            event = decode_message(msg.subject, msg.data, msg.headers)
        except ContractDecodeError as exc:
            return Reject("contract", "undecodable_event", str(exc), path=exc.path)
        except UnknownContractError as exc:
            return Reject("contract", "unknown_contract", str(exc))
        if not isinstance(event, mo.Change):
            return []  # a change no scheduling system takes (payers, cost centres…)
        return [self._owed(event, subscriber) for subscriber in self._subscribers]

    def _owed(self, event: mo.Change, subscriber: Subscriber) -> Owed:
        async def send(control_id: str) -> Answer:
            if subscriber.channel == "fhir":
                put = mo.put(event)
                return await self._http.fhir_put(
                    subscriber.target, put.path, put.resource, key=control_id
                )
            message = mo.mfn(event, control_id, Receiver(subscriber.name, ""))
            return await self._mllp[subscriber.name].send(message)

        return Owed(event.event_id, event.site, subscriber.channel, send, subscriber.name)
