"""`carebus-billing`: run the billing adapter."""

from __future__ import annotations

import sys

from carebus_billing_adapter import app, config
from carebus_shared.runtime.cli import (
    load_settings_or_exit,
    print_settings,
    serve_service,
    service_parser,
)

PROG = "carebus-billing"


def main(argv: list[str] | None = None) -> int:
    parser, _ = service_parser(PROG, __doc__)
    args = parser.parse_args(argv)
    if args.command == "settings":
        return print_settings(config)
    return serve_service(config, load_settings_or_exit(PROG, config), app.build)


if __name__ == "__main__":
    sys.exit(main())
