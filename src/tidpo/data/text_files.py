"""Reading JSON Lines, JSON and CSV files row by row, so that a message can name the line or row at fault.

* ``.jsonl``: one JSON object per line; rows are labelled ``line N`` (the file's 1-based line), blank lines are
  skipped, and a line that is not valid JSON, or not an object, is kept as an unreadable entry
  (:class:`~tidpo.data.records.Records`) for the ``on_bad_row`` policy;
* ``.json``: a list of objects, one object of columns (``{"prompt": [...], "chosen": [...], ...}``), one row
  object, or JSON Lines content; rows are labelled ``row N`` (JSON Lines content: ``line N``); any other JSON
  document (e.g. rows wrapped as ``{"data": [...]}``) is an error that says so;
* ``.csv``: a header, then one row per line, every cell read as a string; rows are labelled ``row N`` among the
  data rows.

A problem with the whole file (not UTF-8, a broken JSON array, columns of different lengths, a CSV row with the
wrong number of values) raises whatever the policy.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tidpo.data.errors import PreferenceDataError
from tidpo.data.records import Records

TEXT_SUFFIXES = (".jsonl", ".json", ".csv")


def read_records(path: Path) -> Records:
    """Rows of a JSON Lines, JSON or CSV file, parsed here so that errors can name the line."""
    if not path.is_file():
        raise FileNotFoundError(f"preference data not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path)
    text = _utf8_text(path)
    if suffix == ".json" and text.lstrip().startswith("["):
        return _read_json_array(path, text)
    if suffix == ".json" and text.lstrip().startswith("{"):
        columns = _json_columns(path, text)
        if columns is not None:
            return columns
        document = _json_document(text)
        if document is not None:
            return _one_object(path, document)
    return _read_json_lines(path, text)


def _json_document(text: str):
    """The file parsed as one JSON document, or None when it is not one (JSON Lines content)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _one_object(path: Path, document: dict) -> Records:
    """A ``.json`` file holding one object that is not an object of columns: one row when it has the preference
    fields, else an error that says what the file holds and what it should (e.g. rows as ``{"data": [...]}``)."""
    if "chosen" in document or "rejected" in document:
        return Records.numbered([document])
    lists = [key for key, value in document.items() if isinstance(value, list)]
    hint = f"; the rows may be the list under {lists[0]!r}: save that list alone" if lists else ""
    raise PreferenceDataError(
        f"{path}: valid JSON, but one object with the keys {sorted(document)[:8]}, not a list of rows: a .json file "
        f"must hold a list of row objects, one object of columns, or JSON Lines{hint}"
    )


def _utf8_text(path: Path) -> str:
    """The file's text; bytes that are not UTF-8 are an error naming their line and offset."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise PreferenceDataError(
            f"{path}, line {line}: not UTF-8 text (byte {raw[err.start]:#04x} at offset {err.start}); save the file "
            "as UTF-8"
        ) from err


def _json_columns(path: Path, text: str) -> Records | None:
    """The rows of a ``.json`` file that is one object of columns (``{"prompt": [...], "chosen": [...], ...}``:
    one list per column), or None when it is not one (e.g. JSON Lines named ``.json``)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not data or not all(isinstance(value, list) for value in data.values()):
        return None
    if any(isinstance(item, dict) for value in data.values() for item in value):
        return None  # lists of messages: one conversational row, not columns
    lengths = {name: len(value) for name, value in data.items()}
    if len(set(lengths.values())) > 1:
        raise PreferenceDataError(f"{path}: an object of columns whose lengths differ ({lengths})")
    return Records.numbered([dict(zip(data, values, strict=True)) for values in zip(*data.values(), strict=True)])


def _read_json_lines(path: Path, text: str) -> Records:
    """One row per non-blank line; a line that is no JSON object is kept as an unreadable entry."""
    rows, labels, unreadable = [], [], []
    # Deviation from str.splitlines: JSON strings may hold raw U+2028, which splitlines() would break on.
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            rows.append(_json_object(path, number, line))
        except PreferenceDataError as problem:  # not decided here: the on_bad_row policy raises or skips it
            unreadable.append(problem)
            continue
        labels.append(f"line {number}")
    return Records(rows, labels, unreadable)


def _json_object(path: Path, number: int, line: str) -> dict:
    """Line ``number`` of a JSON Lines file, which must hold one JSON object."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise PreferenceDataError(
            f"{path}, line {number}: not valid JSON ({err.msg}, column {err.colno}); each line of a JSON Lines "
            "file must hold one complete JSON object"
        ) from err
    if not isinstance(row, dict):
        raise PreferenceDataError(f"{path}, line {number}: expected a JSON object, got {type(row).__name__}")
    return row


def _read_json_array(path: Path, text: str) -> Records:
    """The objects of a JSON array; any item that is no object is an error naming it."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise PreferenceDataError(f"{path}, line {err.lineno}: not valid JSON ({err.msg}, column {err.colno})") from err
    for number, row in enumerate(data, 1):
        if not isinstance(row, dict):
            raise PreferenceDataError(f"{path}, row {number}: expected a JSON object, got {type(row).__name__}")
    return Records.numbered(data)


def _read_csv(path: Path) -> Records:
    """Every cell is read as a string (no type guessing), so ``"42"`` stays text; blank lines are skipped."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            header = next(reader, [])
            rows = [values for values in reader if values]
    except UnicodeDecodeError as err:
        raise PreferenceDataError(f"{path}: not UTF-8 text ({err.reason}, byte {err.start}); save it as UTF-8") from err
    for number, values in enumerate(rows, 1):
        if len(values) != len(header):
            raise PreferenceDataError(
                f"{path}, row {number}: {len(values)} values for the {len(header)} columns {header}"
            )
    return Records.numbered([dict(zip(header, values, strict=True)) for values in rows])
