"""Reading a CSV export row by row (bounded memory), and writing the reject file."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from carebus_scheduling_adapter.adapters.csv.layout import CsvLayout, MappingError

REJECT_COLUMNS = ("carebus_line", "carebus_column", "carebus_reason", "carebus_message")


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    """Line number in the file where the row starts (the header is line 1)."""
    values: list[str]
    bytes_read: int
    """How far into the file the reader is (for progress; read-ahead makes it approximate)."""


class CsvReader:
    """``with CsvReader(path, layout) as reader: reader.header; for row in reader: ...``"""

    def __init__(self, path: Path, layout: CsvLayout) -> None:
        self.path = path
        stat = path.stat()
        self.size = stat.st_size
        self.modified_ms = int(stat.st_mtime * 1000)
        self._binary = path.open("rb")
        self._text = io.TextIOWrapper(self._binary, encoding=layout.encoding, newline="")
        self._reader = csv.reader(self._text, delimiter=layout.delimiter)
        try:
            self.header = next(self._reader)
        except StopIteration:
            self.close()
            raise MappingError(f"{path} is empty: no header row") from None
        except (UnicodeDecodeError, csv.Error) as exc:
            self.close()
            raise MappingError(f"{path}: cannot read the header: {exc}") from exc

    def __iter__(self) -> Iterator[Row]:
        line = self._reader.line_num + 1
        for values in self._reader:
            if any(v.strip() for v in values):
                yield Row(line, values, self._binary.tell())
            line = self._reader.line_num + 1

    def close(self) -> None:
        self._text.close()

    def __enter__(self) -> CsvReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def csv_text(rows: Sequence[Sequence[str]], delimiter: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerows(rows)
    return buffer.getvalue()


def parse_csv_text(text: str, delimiter: str) -> list[list[str]]:
    return [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if row]


class RejectFile:
    """The rejected rows of one import, as they were, followed by why."""

    def __init__(self, path: Path, header: Sequence[str], delimiter: str) -> None:
        self.path = path
        self.count = 0
        self._file: IO[str] = path.open("w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._file, delimiter=delimiter, lineterminator="\n")
        self._writer.writerow([*header, *REJECT_COLUMNS])

    def write(self, row: Row, column: str, reason: str, message: str) -> None:
        self._writer.writerow([*row.values, str(row.line), column, reason, message])
        self.count += 1

    def close(self) -> None:
        self._file.close()
