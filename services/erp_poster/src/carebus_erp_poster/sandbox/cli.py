"""`carebus-erp-sandbox`: run the ERP sandbox, a cloud ERP journal API misbehaving on request."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from carebus_erp_poster.sandbox import app, config
from carebus_shared.logs import configure_logging
from carebus_shared.settings import SettingsError, describe_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="carebus-erp-sandbox", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the sandbox (the default)")
    commands.add_parser("settings", help="list the environment variables it reads")
    args = parser.parse_args(argv)

    if args.command == "settings":
        for name, kind, default in describe_settings(config.SandboxSettings, config.ENV_PREFIX):
            print(f"{name:45} {kind:8} {default}")
        return 0
    try:
        settings = config.load()
        config.parse_windows(settings.outages)
    except (SettingsError, ValueError) as exc:
        print(f"carebus-erp-sandbox: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.SERVICE, settings.log_level)
    uvicorn.run(
        app.build(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
