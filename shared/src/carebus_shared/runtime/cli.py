"""The one `main` every service script shares: `serve` (the default), `settings`, and the
service's own commands.

A service's ``entrypoints/cli.py`` names its extra commands as :class:`Command` values and
hands them to :class:`ServiceScript`; settings errors name the variable and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from litestar import Litestar

from carebus_shared.logs import configure_logging
from carebus_shared.runtime.server import serve
from carebus_shared.settings import SettingsError, describe_settings


def _no_arguments(_: argparse.ArgumentParser) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Command:
    """One extra sub-command: its help, its arguments, and what it runs (args, settings)."""

    help: str
    run: Callable[[argparse.Namespace, Any], int]
    arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments
    # A command that reads no settings runs even when the environment is incomplete.
    needs_settings: bool = True


@dataclass(frozen=True, slots=True)
class ServiceScript:
    prog: str
    description: str | None
    config: ModuleType
    build: Callable[[Any], Litestar]
    commands: Mapping[str, Command] = field(default_factory=dict)
    # Errors ``build`` raises for a bad configuration (e.g. invalid rules): printed, exit 2.
    start_errors: tuple[type[Exception], ...] = ()

    def main(self, argv: Sequence[str] | None = None) -> int:
        args = self._parser().parse_args(argv)
        if args.command == "settings":
            return print_settings(self.config)
        command = self.commands.get(args.command or "serve")
        settings = None
        if command is None or command.needs_settings:
            settings = load_settings_or_exit(self.prog, self.config)
        try:
            if command is not None:
                return command.run(args, settings)
            return self._serve(settings)
        except self.start_errors as exc:
            print(f"{self.prog}: {exc}", file=sys.stderr)
            return 2

    def _serve(self, settings: Any) -> int:
        configure_logging(self.config.SERVICE, settings.log_level)
        serve(self.build(settings), settings)
        return 0

    def _parser(self) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(
            prog=self.prog,
            description=self.description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        commands = parser.add_subparsers(dest="command")
        commands.add_parser("serve", help="run the service (the default)")
        commands.add_parser("settings", help="list the environment variables it reads")
        for name, command in self.commands.items():
            command.arguments(commands.add_parser(name, help=command.help))
        return parser


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
