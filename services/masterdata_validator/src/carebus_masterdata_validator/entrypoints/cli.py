"""`carebus-masterdata`: run the master-data validator, or import master data into it."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

from carebus_masterdata_validator import app, config
from carebus_masterdata_validator.domain.kinds import BY_COLLECTION
from carebus_shared.auth.client import bearer, cli_key
from carebus_shared.runtime.cli import Command, ServiceScript


def import_file(
    path: Path, collection: str, base_url: str, *, dry_run: bool, key: str | None
) -> tuple[int, dict[str, object]]:
    """POST ``path`` to the running service's import endpoint; (HTTP status, report)."""
    content_type = "text/csv" if path.suffix.lower() == ".csv" else "application/json"
    query = "?dry_run=true" if dry_run else ""
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}/v1/{collection}/import{query}",
        data=path.read_bytes(),
        method="POST",
        # The key's client (it needs masterdata:write) is recorded as who changed what.
        headers={"Content-Type": content_type, **bearer(key)},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _import_arguments(imp: argparse.ArgumentParser) -> None:
    imp.add_argument("file", type=Path)
    imp.add_argument("--kind", required=True, choices=sorted(BY_COLLECTION), help="collection")
    imp.add_argument("--url", default=None, help="service URL (default: from the settings)")
    imp.add_argument("--dry-run", action="store_true", help="check and report, write nothing")
    imp.add_argument("--key", default=None, help="API key (default: CAREBUS_API_KEY)")


def _import(args: argparse.Namespace, settings: config.Settings) -> int:
    url = args.url or f"http://{settings.http_host}:{settings.http_port}"
    try:
        status, report = import_file(
            args.file, args.kind, url, dry_run=args.dry_run, key=args.key or cli_key()
        )
    except (OSError, ValueError) as exc:
        print(f"carebus-masterdata: import failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0 if status == 200 else 1


SCRIPT = ServiceScript(
    "carebus-masterdata",
    __doc__,
    config,
    app.build,
    commands={
        "import": Command(
            "bulk import a CSV or JSON file (all rows or none)", _import, _import_arguments
        )
    },
)
main = SCRIPT.main


if __name__ == "__main__":
    sys.exit(main())
