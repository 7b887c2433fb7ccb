"""`carebus-scheduling`: run the scheduling adapter, or import a CSV export.

    carebus-scheduling serve
    carebus-scheduling import FILE.csv [--mapping mapping.toml] [--rejects FILE]

The import reads NATS_URL and DATABASE_URL (and the CAREBUS_SCHEDULING_ADAPTER_* settings)
like the service.  Exit status: 0 every row published (or already there), 1 some rows were
rejected (see the reject file), 2 bad arguments / mapping / header, 3 NATS or PostgreSQL
unavailable or the file unreadable part-way (re-running is safe: nothing is published twice).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import msgspec

from carebus_scheduling_adapter import app, config
from carebus_scheduling_adapter.adapters.csv.layout import CsvLayout, MappingError
from carebus_scheduling_adapter.adapters.progress import Progress
from carebus_scheduling_adapter.handlers.csv_import import ImportStopped, ImportSummary
from carebus_shared.dependencies import DEPENDENCY_ERRORS
from carebus_shared.logs import configure_logging
from carebus_shared.runtime.cli import Command, ServiceScript

PROG = "carebus-scheduling"


class _Unreachable(RuntimeError):
    pass


def _import_arguments(imp: argparse.ArgumentParser) -> None:
    imp.add_argument("file", type=Path, help="the CSV file (documented layout, or --mapping)")
    imp.add_argument("--mapping", type=Path, help="TOML mapping for another column layout")
    imp.add_argument(
        "--rejects", type=Path, help="where rejected rows go (default: FILE.rejects.csv)"
    )
    imp.add_argument("--source", help="source system name (default: mapping, then settings)")
    imp.add_argument("--site", help="site of rows without a site column")
    imp.add_argument(
        "--connect-timeout", type=float, default=30.0, help="seconds to reach NATS/PostgreSQL"
    )


def _import(args: argparse.Namespace, settings: config.Settings) -> int:
    try:
        layout = CsvLayout.from_toml(args.mapping.read_text()) if args.mapping else CsvLayout()
    except (OSError, MappingError) as exc:
        print(f"{PROG}: {args.mapping}: {exc}", file=sys.stderr)
        return 2
    if not args.file.is_file():
        print(f"{PROG}: {args.file}: no such file", file=sys.stderr)
        return 2
    settings = msgspec.structs.replace(
        settings,
        csv_source_system=args.source or layout.source_system or settings.csv_source_system,
        site=args.site or layout.site or settings.site,
    )
    rejects = args.rejects or args.file.with_name(args.file.name + ".rejects.csv")
    # Progress goes to stderr; keep log lines there to warnings and errors.
    configure_logging(config.SERVICE, "WARNING")
    try:
        summary = asyncio.run(_run_import(settings, args, layout, rejects))
    except MappingError as exc:
        print(f"{PROG}: {args.file}: {exc}", file=sys.stderr)
        return 2
    except _Unreachable:
        print(
            f"{PROG}: NATS ({settings.nats_url}) or PostgreSQL did not answer within "
            f"{args.connect_timeout:.0f} s",
            file=sys.stderr,
        )
        return 3
    except ImportStopped as exc:
        print(f"{PROG}: import stopped at {exc}; rows before it were handled", file=sys.stderr)
        return 3
    except DEPENDENCY_ERRORS as exc:
        print(
            f"{PROG}: import stopped, JetStream or PostgreSQL failed ({type(exc).__name__}: "
            f"{exc}); run it again: rows already published are not published twice",
            file=sys.stderr,
        )
        return 3
    print("\n".join(summary.lines()))
    return 1 if summary.rejected else 0


async def _run_import(
    settings: config.Settings, args: argparse.Namespace, layout: CsvLayout, rejects: Path
) -> ImportSummary:
    runtime, importer = app.build_importer(settings)
    await runtime.start()
    try:
        try:
            await runtime.wait_started(args.connect_timeout)
        except TimeoutError:
            raise _Unreachable from None
        progress = Progress(sys.stderr, args.file.stat().st_size, args.file.name)
        return await importer.run(args.file, layout, rejects, progress)
    finally:
        await runtime.stop()


SCRIPT = ServiceScript(
    PROG,
    __doc__,
    config,
    app.build,
    commands={"import": Command("import appointments from a CSV file", _import, _import_arguments)},
)
main = SCRIPT.main


if __name__ == "__main__":
    sys.exit(main())
