"""`carebus-billing`: run the billing adapter."""

from __future__ import annotations

import argparse
import sys

from carebus_billing_adapter import app, config
from carebus_shared.logs import configure_logging
from carebus_shared.runtime.server import serve
from carebus_shared.settings import SettingsError, describe_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="carebus-billing", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the service (the default)")
    commands.add_parser("settings", help="list the environment variables it reads")
    args = parser.parse_args(argv)

    if args.command == "settings":
        for name, kind, default in describe_settings(config.Settings, config.ENV_PREFIX):
            print(f"{name:45} {kind:8} {default}")
        return 0
    try:
        settings = config.load()
    except SettingsError as exc:
        print(f"carebus-billing: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.SERVICE, settings.log_level)
    serve(app.build(settings), settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
