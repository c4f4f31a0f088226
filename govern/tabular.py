"""Reading a tabular export (CSV): decoding, separators, header names, records with line numbers.

Shared by the imports of HR exports (govern.directory) and of password-manager exports
(govern.vault). It knows nothing of what the columns mean: each import maps the header to its
own fields and words its own messages from the errors raised here.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

#: Byte order marks of UTF-16 (little and big endian).
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class UndecodableError(ValueError):
    """The bytes are not text in the accepted encodings; ``line`` is where, when known."""

    def __init__(self, line: int | None) -> None:
        super().__init__(f"line {line} is not UTF-8 text" if line else "not valid UTF-16 text")
        self.line = line


class RecordError(ValueError):
    """A record the csv module cannot read; ``line`` is the first physical line of the record."""

    def __init__(self, line: int, error: csv.Error) -> None:
        super().__init__(str(error))
        self.line = line
        self.error = error


@dataclass(frozen=True)
class Record:
    """One record of a CSV file: its first and last physical line, and its cells."""

    line: int
    end: int
    cells: list[str]


def decode(content: bytes, *, utf16: bool = False) -> str:
    """UTF-8 text, with or without a BOM (and UTF-16 with a BOM when ``utf16``); UndecodableError if not."""
    if utf16 and content.startswith(UTF16_BOMS):
        try:
            return content.decode("utf-16")
        except UnicodeDecodeError:
            raise UndecodableError(None) from None
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UndecodableError(content[: exc.start].count(b"\n") + 1) from None


def digest(content: bytes) -> str:
    """The file's SHA-256, hex: reports and audit events name a file by it."""
    return hashlib.sha256(content).hexdigest()


def base_name(name: str | None) -> str:
    """The file name without the folders a browser or a path may put before it."""
    return re.split(r"[\\/]", name or "")[-1]


def excel_separator(first_line: str) -> str | None:
    """The separator an Excel "sep=;" line names, or None when the line is not one."""
    text = first_line.strip()
    return text[4] if text.lower().startswith("sep=") and len(text) == 5 else None


def sniff_delimiter(first_line: str) -> str:
    """Semicolon when the header has more of them than commas, else comma."""
    # Count outside quotes, so a quoted "Doe, Jane" in a header does not decide it.
    unquoted = re.sub(r'"[^"]*"', "", first_line)
    return ";" if unquoted.count(";") > unquoted.count(",") else ","


def normalise_header(text: str) -> str:
    """Lower-case, strip a BOM, and turn runs of non-alphanumerics into single spaces."""
    return re.sub(r"[^0-9a-z]+", " ", text.replace("\ufeff", "").lower()).strip()


def records(text: str, *, delimiter: str = ",", first_line: int = 1) -> Iterator[Record]:
    """Every record of ``text`` with its line numbers (counted from ``first_line``).

    Strict: an unterminated quote is a RecordError naming the line where the record began, not a
    last cell that swallows every remaining line.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    offset = first_line - 1
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise RecordError(start + offset, exc) from None
        yield Record(start + offset, reader.line_num + offset, cells)
        start = reader.line_num + 1


def is_blank(cells: list[str]) -> bool:
    """True when no cell has anything but blank space (spreadsheets leave such lines)."""
    return not any(cell.strip() for cell in cells)


def cells_by_name(cells: list[str], positions: Mapping[int, str]) -> dict[str, str]:
    """The cells of the mapped columns by field name; a short line's missing cells are empty."""
    return {name: cells[index] if index < len(cells) else "" for index, name in positions.items()}


def csv_problem(error: csv.Error) -> str:
    """What a csv module error means, for people who opened the file in a spreadsheet."""
    text = str(error)
    if "unexpected end of data" in text or "EOF inside string" in text:
        return "a quote (\") opened on this line is never closed, so the rest of the file would be one cell; close the quote or remove it"
    if "expected after" in text:
        return "a closing quote (\") is followed by more text in the same cell; double the quotes inside a quoted cell (\"\")"
    if "field larger than field limit" in text:
        return "a cell is too large (a quote that is not closed?)"
    return f"it is not valid CSV ({text[:80]})"
