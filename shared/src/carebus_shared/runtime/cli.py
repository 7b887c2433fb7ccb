"""What every service script shares: the `serve` (default) and `settings` commands.

A service's ``entrypoints/cli.py`` builds its parser from :func:`service_parser`, adds its
own commands, and ends with :func:`serve_service`; settings errors name the variable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from litestar import Litestar

from carebus_shared.config import RuntimeSettings
from carebus_shared.logs import configure_logging
from carebus_shared.runtime.server import serve
from carebus_shared.settings import SettingsError, describe_settings


def service_parser(prog: str, description: str | None) -> tuple[argparse.ArgumentParser, Any]:
    """A parser with `serve` and `settings`; returns it and its subparsers to add to."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the service (the default)")
    commands.add_parser("settings", help="list the environment variables it reads")
    return parser, commands


def print_settings(config: ModuleType) -> int:
    for name, kind, default in describe_settings(config.Settings, config.ENV_PREFIX):
        print(f"{name:45} {kind:8} {default}")
    return 0


def load_settings_or_exit(prog: str, config: ModuleType) -> Any:
    """The service's settings, or exit 2 with a message naming the bad variable."""
    try:
        return config.load()
    except SettingsError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def serve_service(
    config: ModuleType, settings: RuntimeSettings, build: Callable[[Any], Litestar]
) -> int:
    """Configure JSON logging, build the app and serve it until SIGTERM."""
    configure_logging(config.SERVICE, settings.log_level)
    serve(build(settings), settings)
    return 0
