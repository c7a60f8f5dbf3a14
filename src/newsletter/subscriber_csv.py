"""Reading a subscriber CSV: one validated row at a time, in flat memory. No SQL here.

:func:`read_rows` yields each data row of the file with its normalised address and
cleaned name, or with the reason it is invalid. A file that cannot be read as CSV
(not UTF-8, binary, empty, a quote never closed, no email column) raises
:class:`~newsletter.errors.InputError` naming the file and line, possibly after many
rows: the caller must not write anything before the last row has been read.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import NamedTuple

from .addresses import clean_name, first_name_of, name_problem, normalise_email
from .errors import InputError

__all__ = ["Row", "read_rows"]

# Column names other tools export (Mailchimp, listmonk, Buttondown, spreadsheets).
_EMAIL_COLUMNS = ("email", "email address", "e-mail", "e-mail address", "mail")
_NAME_COLUMNS = ("name", "full name", "fullname", "display name")
_FIRST_COLUMNS = ("first name", "firstname", "first_name", "given name", "fname")
_LAST_COLUMNS = ("last name", "lastname", "surname", "family name")


class Row(NamedTuple):
    """One data row: where it starts, and its address and name, or why it is invalid."""

    line: int
    #: The normalised address ("" when the address itself is invalid).
    address: str
    #: The cleaned name (one line, single spaces).
    name: str
    #: Why the row cannot be imported, or "" for a valid row.
    problem: str = ""
    #: For "Hello {first_name},": its own column, or a "Family, Given" name's given part.
    first_name: str = ""


def _column(header: list[str], names: tuple[str, ...]) -> str | None:
    for column in header:
        if column.strip().lower() in names:
            return column
    return None


def _not_utf8(path: Path) -> InputError:
    """Where the first byte that is not UTF-8 is: line, column and the byte itself."""
    with path.open("rb") as raw:
        for number, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return InputError(
                    f"not a readable CSV file: byte 0x{line[exc.start]:02x} at column "
                    f"{exc.start + 1} is not UTF-8 (Latin-1 or Windows-1252?); "
                    "save it as CSV UTF-8 and import again",
                    f"{path}:{number}",
                )
    return InputError("not a readable CSV file: not UTF-8", f"{path}:1")  # pragma: no cover


def _check_encoding(path: Path, head: bytes) -> None:
    """Refuse what is not UTF-8 text before reading a row."""
    if not head.strip(b" \t\r\n\xef\xbb\xbf"):
        raise InputError(
            "the file is empty: expected a header line such as 'email,name'", f"{path}:1"
        )
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(
            f"not a readable CSV file: it starts with byte 0x{head[0]:02x}, a UTF-16 "
            "byte-order mark; save it as CSV UTF-8 and import again",
            f"{path}:1",
        )
    if b"\x00" in head:
        line = head[: head.index(b"\x00")].count(b"\n") + 1
        raise InputError(
            "not a readable CSV file: byte 0x00 (a binary file, or UTF-16 without a "
            "byte-order mark); save it as CSV UTF-8 and import again",
            f"{path}:{line}",
        )


def _spans_lines(path: Path, start: int, end: int) -> InputError:
    return InputError(
        f"not a readable CSV file: a quoted field runs over {end - start + 1} lines "
        "(a quote that is never closed?); fix the quote and import again",
        f"{path}:{start}",
    )


def _csv_lines(path: Path) -> Generator[tuple[int, list[str]], None, None]:
    """(first line, fields) of each record; one that cannot be parsed stops the import.

    A quote opened and never closed makes the csv module swallow every following line
    into one field, so a record over several lines is refused with the line where it
    starts (so is a field over the csv module's limit).
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    with handle:
        _check_encoding(path, handle.read(64 * 1024))
        handle.seek(0)
        text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
        reader = csv.reader(text, strict=True)
        start = 1
        try:
            for fields in reader:
                if reader.line_num > start:
                    raise _spans_lines(path, start, reader.line_num)
                yield start, fields
                start = reader.line_num + 1
        except csv.Error as exc:
            if reader.line_num > start:
                raise _spans_lines(path, start, reader.line_num) from None
            raise InputError(f"not a readable CSV file: {exc}", f"{path}:{start}") from None
        except UnicodeDecodeError:
            raise _not_utf8(path) from None


def read_rows(path: Path) -> Generator[Row, None, None]:
    """Every data row of a subscriber CSV, validated, one at a time (blank lines skipped).

    Duplicates are not this function's business: it keeps nothing from one row to the
    next, so memory does not grow with the file.
    """
    records = _csv_lines(path)
    try:
        yield from _rows(path, records)
    finally:
        records.close()


def _rows(path: Path, records: Iterator[tuple[int, list[str]]]) -> Iterator[Row]:
    header: list[str] = []
    for _, header in records:
        if any(cell.strip() for cell in header):
            break
    email_col = _column(header, _EMAIL_COLUMNS)
    if email_col is None:
        found = ", ".join(header) or "nothing"
        raise InputError(f"no 'email' column (found: {found})", f"{path}:1")
    index = {column: number for number, column in reversed(list(enumerate(header)))}
    email_at = index[email_col]
    name_of = _name_reader(header, index)
    first = _column(header, _FIRST_COLUMNS)
    first_at = index[first] if first is not None else None

    for line, fields in records:
        if not "".join(fields).strip():
            continue  # a blank line
        name = clean_name(name_of(fields))
        first_name = clean_name(_cell(fields, first_at)) if first_at is not None else ""
        first_name = first_name or first_name_of(name)
        try:
            address = normalise_email(fields[email_at] if email_at < len(fields) else "")
        except ValueError as exc:
            yield Row(line, "", name, str(exc))
            continue
        problem = name_problem(name) or name_problem(first_name)
        problem = f"{address}: {problem}" if problem else ""
        yield Row(line, address, name, problem, first_name)


def _name_reader(header: list[str], index: dict[str, int]) -> Callable[[list[str]], str]:
    """How to read a row's name: the ``name`` column, or ``first name`` + ``last name``."""
    name_col = _column(header, _NAME_COLUMNS)
    if name_col is not None:
        at = index[name_col]
        return lambda fields: fields[at] if at < len(fields) else ""
    first, last = _column(header, _FIRST_COLUMNS), _column(header, _LAST_COLUMNS)
    first_at = index[first] if first is not None else None
    last_at = index[last] if last is not None else None
    return lambda fields: f"{_cell(fields, first_at)} {_cell(fields, last_at)}"


def _cell(fields: list[str], at: int | None) -> str:
    return fields[at] if at is not None and at < len(fields) else ""
