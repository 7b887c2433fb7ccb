"""Keeps the in-memory view current by watching the KV bucket (the read model).

The watch first delivers the latest value of every key, then each change as it happens.
``ready`` is set once that initial load is complete: validating against a half-loaded view
would quarantine events for master data that exists. Changes after that are passed on as
wait keys, so parked events waiting for them are released.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import msgspec
from nats.js import JetStreamContext
from nats.js.kv import KV_DEL, KV_PURGE

from carebus_masterdata_validator.adapters.metrics import ValidatorMetrics
from carebus_masterdata_validator.domain.view import MasterDataView, decode_change

log = logging.getLogger("carebus.masterdata.view")


class ViewWatcher:
    def __init__(
        self,
        view: MasterDataView,
        js: Callable[[], JetStreamContext],
        bucket: str,
        on_change: Callable[[set[str]], None],
        on_loaded: Callable[[], None],
        metrics: ValidatorMetrics,
    ) -> None:
        self.view = view
        self.ready = asyncio.Event()
        self._js = js
        self._bucket = bucket
        self._on_change = on_change
        self._on_loaded = on_loaded
        self._metrics = metrics

    async def run(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # nats raises assorted errors; the watch is re-made
                log.warning("master-data view watch failed, re-watching: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _watch(self) -> None:
        kv = await self._js().key_value(self._bucket)
        watcher = await kv.watchall()
        try:
            async for entry in watcher:
                if entry is None:  # the initial values are all in
                    self._loaded()
                    continue
                if entry.operation in (KV_DEL, KV_PURGE):
                    touched = self.view.remove(entry.key)
                else:
                    try:
                        touched = self.view.apply(entry.key, decode_change(entry.value or b""))
                    except msgspec.ValidationError as exc:
                        log.error("unreadable master-data value under %s: %s", entry.key, exc)
                        continue
                if touched and self.ready.is_set():
                    self._on_change(touched)
                    self._metrics.view_records.set(len(self.view))
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]

    def _loaded(self) -> None:
        self._metrics.view_records.set(len(self.view))
        if not self.ready.is_set():
            log.info("master-data view loaded", extra={"records": len(self.view)})
            self.ready.set()
            # Whatever changed while this process was away may release parked events.
            self._on_loaded()
