"""Finding the installed services through the ``carebus.services`` entry-point group.

The CLI lives in the shared library, which must not import any service by name; each
service's pyproject names its config module there, which says everything the CLI needs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType

import msgspec

from carebus_shared.config import RuntimeSettings

# Pipeline order: the order services are started, listed and stopped (in reverse).
ORDER = (
    "scheduling-adapter",
    "billing-adapter",
    "masterdata-validator",
    "mapper",
    "erp-poster",
    # Not a stage: the ops console follows the streams beside the pipeline.
    "ops-console",
    # Not a stage either: feeds back to billing and scheduling (docs/decisions/025).
    "outbound",
)


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    package: str
    schema: str
    config: ModuleType

    def settings(self) -> RuntimeSettings:
        settings: RuntimeSettings = self.config.load()
        return settings

    def listeners(self) -> list[str]:
        """``<service> http://127.0.0.1:<port>`` lines, as `make run` prints them."""
        settings = self.settings()
        lines = [f"{self.name} http://{settings.http_host}:{settings.http_port}"]
        fields = msgspec.structs.asdict(settings)
        if fields.get("mllp_port"):
            lines.append(f"{self.name} mllp://{fields['mllp_host']}:{fields['mllp_port']}")
        return lines

    def command(self, python: str) -> list[str]:
        return [python, "-m", f"{self.package}.entrypoints.cli", "serve"]


def discover() -> list[ServiceEntry]:
    found = []
    for ep in entry_points(group="carebus.services"):
        module = importlib.import_module(ep.value)
        found.append(ServiceEntry(module.SERVICE, module.PACKAGE, module.SCHEMA, module))
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(found, key=lambda s: (rank.get(s.name, len(ORDER)), s.name))
