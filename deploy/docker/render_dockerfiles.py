"""Write every image's Dockerfile from the one template, ``Dockerfile.template`` beside this.

    python deploy/docker/render_dockerfiles.py          # (re)write them
    python deploy/docker/render_dockerfiles.py --check  # exit 1 naming any that differ

What differs between the images is in ``IMAGES``: the folder installed, the script run, the
ports, and the settings that make the service listen on every interface
(``<PREFIX>HTTP_HOST``, and ``<PREFIX>MLLP_HOST`` where it takes MLLP). Docker build
arguments cannot reach an exec-form ENTRYPOINT or the HEALTHCHECK's port, hence one
rendered file per image rather than one file with build arguments. Standard library only.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "Dockerfile.template"
REPO = HERE.parents[1]


@dataclass(frozen=True)
class Image:
    folder: str  # the package installed beside contracts and shared; its Dockerfile sits there
    title: str
    image: str
    script: str
    env_prefix: str
    http_port: int
    mllp_port: int | None = None

    def render(self, template: str) -> str:
        listen = ["HTTP_HOST"] + (["MLLP_HOST"] if self.mllp_port else [])
        ports = [self.http_port] + ([self.mllp_port] if self.mllp_port else [])
        return template.format(
            title=self.title,
            folder=self.folder,
            image=self.image,
            script=self.script,
            http_port=self.http_port,
            ports=" ".join(str(p) for p in ports),
            listen_env=" \\\n".join(f"    {self.env_prefix}{name}=0.0.0.0" for name in listen),
        )


IMAGES = (
    Image("services/scheduling_adapter", "scheduling adapter", "carebus/scheduling-adapter",
          "carebus-scheduling", "CAREBUS_SCHEDULING_ADAPTER_", 8081, 2575),
    Image("services/billing_adapter", "billing adapter", "carebus/billing-adapter",
          "carebus-billing", "CAREBUS_BILLING_ADAPTER_", 8082, 2576),
    Image("services/masterdata_validator", "master-data validator",
          "carebus/masterdata-validator", "carebus-masterdata",
          "CAREBUS_MASTERDATA_VALIDATOR_", 8083),
    Image("services/mapper", "mapper", "carebus/mapper", "carebus-mapper",
          "CAREBUS_MAPPER_", 8084),
    Image("services/erp_poster", "ERP poster", "carebus/erp-poster", "carebus-erp-poster",
          "CAREBUS_ERP_POSTER_", 8085),
    Image("services/ops_console", "ops console", "carebus/ops-console", "carebus-ops-console",
          "CAREBUS_OPS_CONSOLE_", 8087),
    Image("services/outbound", "outbound feeds", "carebus/outbound", "carebus-outbound",
          "CAREBUS_OUTBOUND_", 8088),
    # A tool for demos and tests (compose profile "http-erp"), not a pipeline stage.
    Image("tools/erp_sandbox", "ERP sandbox (demo and test ERP)",
          "carebus/erp-sandbox", "carebus-erp-sandbox", "CAREBUS_ERP_SANDBOX_", 8086),
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 on drift")
    parser.add_argument("--root", type=Path, default=REPO, help="the repository root")
    args = parser.parse_args(argv)
    template = TEMPLATE.read_text()
    stale = []
    for image in IMAGES:
        path = args.root / image.folder / "Dockerfile"
        wanted = image.render(template)
        if path.is_file() and path.read_text() == wanted:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(wanted)
    for path in stale:
        verb = "differs from the template" if args.check else "written"
        print(f"{path.relative_to(args.root)}: {verb}", file=sys.stderr if args.check else None)
    if args.check and stale:
        print("run: python deploy/docker/render_dockerfiles.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
