"""CSV batch import: validate each row, publish the good ones, keep and report the bad ones.

Rows are read and published in chunks; the publishes of one import form one stream with a
window of unconfirmed publishes (``Sink.stream``), so the next chunk is read and sent while
the last ones are confirmed, and memory stays bounded whatever the file size. The summary is
printed (and the exit status given) only once every publish was confirmed.
A rejected row goes to the reject file (for the person running the import) and to the
exception store (with the mapping it was read with, for a re-drive).  Re-importing a file
publishes nothing new: event ids come from the rows, and JetStream reports the re-sent ones
as duplicates.
If JetStream or PostgreSQL fails mid-file the import stops; running it again is safe.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from carebus_contracts import Event
from carebus_scheduling_adapter.adapters.csv.files import (
    CsvReader,
    RejectFile,
    Row,
    csv_text,
    parse_csv_text,
)
from carebus_scheduling_adapter.adapters.csv.layout import CsvLayout, MappingError
from carebus_scheduling_adapter.adapters.csv.rows import RowProblem, row_to_event, row_values
from carebus_scheduling_adapter.adapters.progress import Progress
from carebus_scheduling_adapter.domain.inputs import CONTENT_CSV, SOURCE_CSV
from carebus_shared.exceptions.redrive import Reprocessed
from carebus_shared.intake import EventStream, Sink

log = logging.getLogger(__name__)

H_MAPPING: Final = "Carebus-Csv-Mapping"
H_SOURCE: Final = "Carebus-Source-System"
H_SITE: Final = "Carebus-Site"
H_VERSION: Final = "Carebus-Fallback-Version"
H_TZ: Final = "Carebus-Default-Tz"


@dataclass
class ImportSummary:
    rows: int = 0
    published: int = 0
    duplicates: int = 0
    rejected: int = 0
    seconds: float = 0.0
    reject_file: Path | None = None

    def lines(self) -> list[str]:
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        text = [
            f"rows read     {self.rows:>10,}",
            f"published     {self.published:>10,}  (new events)",
            f"already there {self.duplicates:>10,}  (published before: nothing new)",
            f"rejected      {self.rejected:>10,}",
            f"time          {self.seconds:>10.2f} s  ({rate:,.0f} rows/s)",
        ]
        if self.reject_file is not None and self.rejected:
            text.append(f"rejected rows and reasons: {self.reject_file}")
        return text


class ImportStopped(RuntimeError):
    """The import could not go on (unreadable file); rows before ``line`` were handled."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        super().__init__(f"line {line}: {message}")


class CsvImport:
    def __init__(
        self,
        sink: Sink,
        *,
        source_system: str,
        site: str | None,
        default_tz: str,
        chunk_rows: int = 1000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sink = sink
        self._source_system = source_system
        self._site = site
        self._tz = default_tz
        self._chunk = chunk_rows
        self._clock = clock

    async def run(
        self, path: Path, layout: CsvLayout, rejects: Path, progress: Progress | None = None
    ) -> ImportSummary:
        """Import ``path``; raises MappingError (bad header) or ImportStopped."""
        started = time.perf_counter()
        summary = ImportSummary(reject_file=rejects)
        with CsvReader(path, layout) as reader:
            # Rows without updated_at get the file's modification time as their version.
            fallback_version = reader.modified_ms
            positions = layout.positions(reader.header)
            reject_file = RejectFile(rejects, reader.header, layout.delimiter)
            stream = self._sink.stream(SOURCE_CSV)
            try:
                chunk: list[Row] = []
                for row in _rows(reader):
                    chunk.append(row)
                    if len(chunk) >= self._chunk:
                        await self._chunk_done(chunk, reader.header, positions, layout,
                                               fallback_version, summary, reject_file,
                                               stream)  # fmt: skip
                        chunk = []
                        if progress is not None:
                            progress.update(row.bytes_read, summary.rows, summary.rejected)
                await self._chunk_done(chunk, reader.header, positions, layout,
                                       fallback_version, summary, reject_file, stream)  # fmt: skip
                tally = await stream.confirmed()
                summary.published, summary.duplicates = tally.published, tally.duplicates
            finally:
                reject_file.close()
                if progress is not None:
                    progress.update(reader.size, summary.rows, summary.rejected, force=True)
                    progress.done()
        summary.seconds = time.perf_counter() - started
        return summary

    async def handle(self, raw: bytes, headers: Mapping[str, str]) -> Reprocessed:
        """Re-drive one kept row: ``raw`` is its header line and the row, as CSV."""
        mapping = headers.get(H_MAPPING)
        try:
            layout = CsvLayout.from_toml(mapping) if mapping else CsvLayout()
            lines = parse_csv_text(raw.decode("utf-8"), layout.delimiter)
            if len(lines) != 2:
                raise MappingError("a kept CSV row is a header line and one row")
            positions = layout.positions(lines[0])
        except (MappingError, UnicodeDecodeError) as exc:
            return Reprocessed(False, str(exc), reason="unreadable_row")
        source_system = headers.get(H_SOURCE) or layout.source_system or self._source_system
        site = headers.get(H_SITE) or layout.site or self._site
        fallback = int(headers.get(H_VERSION) or self._clock().timestamp() * 1000)
        values = row_values(lines[1], positions, layout)
        default_tz = headers.get(H_TZ) or self._tz
        try:
            event = self._event(values, layout, source_system, site, fallback, default_tz)
        except RowProblem as problem:
            await self._keep(raw, problem, layout, source_system, site, fallback, default_tz)
            return Reprocessed(False, str(problem), reason=problem.reason)
        await self._sink.publish(SOURCE_CSV, [event])
        return Reprocessed(True, f"published {event.event_id}", (event.event_id,))

    # -- internals ----------------------------------------------------------------------
    def _event(
        self,
        values: Mapping[str, str],
        layout: CsvLayout,
        source_system: str,
        site: str | None,
        fallback_version: int,
        default_tz: str | None = None,
    ) -> Event:
        return row_to_event(
            values,
            layout,
            source_system=source_system,
            site=site,
            default_tz=default_tz or self._tz,
            recorded_at=self._clock(),
            fallback_version_ms=fallback_version,
        )

    async def _chunk_done(
        self,
        chunk: list[Row],
        header: list[str],
        positions: Mapping[str, int],
        layout: CsvLayout,
        fallback_version: int,
        summary: ImportSummary,
        reject_file: RejectFile,
        stream: EventStream,
    ) -> None:
        if not chunk:
            return
        source_system = layout.source_system or self._source_system
        site = layout.site or self._site
        events: list[Event] = []
        bad: list[tuple[Row, RowProblem]] = []
        for row in chunk:
            try:
                values = row_values(row.values, positions, layout)
                events.append(self._event(values, layout, source_system, site, fallback_version))
            except RowProblem as exc:
                bad.append((row, exc))
            except Exception as exc:  # a mapping bug: keep the row, go on with the file
                log.exception("CSV line %d could not be mapped (internal error)", row.line)
                bad.append((row, RowProblem("", "internal_error", type(exc).__name__)))
        await stream.publish(events, inputs=len(events))
        for row, problem in bad:
            raw = csv_text([header, row.values], layout.delimiter).encode()
            await self._keep(raw, problem, layout, source_system, site, fallback_version)
            column = layout.columns.get(problem.field, problem.field)
            reject_file.write(row, column, problem.reason, problem.message)
        summary.rows += len(chunk)
        summary.rejected += len(bad)

    async def _keep(
        self,
        raw: bytes,
        problem: RowProblem,
        layout: CsvLayout,
        source_system: str,
        site: str | None,
        fallback_version: int,
        default_tz: str | None = None,
    ) -> None:
        headers = {
            H_SOURCE: source_system,
            H_VERSION: str(fallback_version),
            H_TZ: default_tz or self._tz,
        }
        if layout.text:
            headers[H_MAPPING] = layout.text
        if site:
            headers[H_SITE] = site
        await self._sink.reject(
            raw=raw,
            source=SOURCE_CSV,
            category="mapping",
            reason=problem.reason,
            message=str(problem),
            content_type=CONTENT_CSV,
            site=site,
            path=layout.columns.get(problem.field, problem.field),
            offending_value=problem.value,
            headers=headers,
        )


def _rows(reader: CsvReader) -> Iterator[Row]:
    line = 1
    try:
        for row in reader:
            line = row.line
            yield row
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ImportStopped(line + 1, f"unreadable: {exc}") from exc
