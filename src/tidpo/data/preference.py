"""Loading and checking preference data: TRL's preference dataset type (``prompt``, ``chosen``, ``rejected``).

Two formats, as in TRL:

* standard: ``prompt``, ``chosen`` and ``rejected`` are non-empty strings; the completion continues the prompt's
  text directly (``prompt + chosen``), so the separating space belongs to one of them;
* conversational: each field is a non-empty list of ``{"role": str, "content": str}`` messages; ``chosen`` and
  ``rejected`` hold the assistant turn(s).

``prompt`` is optional (implicit prompt): ``chosen`` and ``rejected`` then hold the whole text or conversation, and
the prompt is their shared beginning, found at tokenisation (:mod:`tidpo.data.tokenization`).

Every row is checked before anything is returned, so a bad row fails here, with its file and line, rather than in
the middle of training. The first row sets the format and whether a prompt is given; every row must match it.
Rows are named ``line N`` in JSON Lines files (the file's 1-based line) and ``row N`` everywhere else (the 1-based
position of the record: in a JSON array or a JSON object of columns, among a CSV file's data rows, in a
``Dataset``). Extra columns are kept.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset, DatasetDict
from datasets.table import InMemoryTable

from tidpo.data.errors import PreferenceDataError

logger = logging.getLogger("tidpo.data")

STANDARD = "standard"
CONVERSATIONAL = "conversational"
REQUIRED_FIELDS = ("chosen", "rejected")
FIELDS = ("prompt", *REQUIRED_FIELDS)
FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")

_EXPECTED = {
    STANDARD: "a non-empty string",
    CONVERSATIONAL: 'a non-empty list of {"role": str, "content": str} messages',
}
_MISSING = object()


@dataclass(frozen=True)
class _Records:
    """Rows read from a file, each with the label that names it in error messages (``line 7``, ``row 7``)."""

    rows: list[dict[str, Any]]
    labels: list[str]
    unparsed: int = 0  # lines left out as not valid JSON (skip mode)


def load_preference_data(
    source: str | os.PathLike | Dataset | DatasetDict | list[dict],
    split: str = "train",
    config_name: str | None = None,
    on_bad_row: str = "error",
    skipped: list[str] | None = None,
) -> Dataset:
    """Loads preference data and checks every row.

    Args:
        source: a ``.jsonl``, ``.json`` (a list of objects, one object of columns, or JSON Lines content),
            ``.csv`` or ``.parquet`` file; a folder written by ``Dataset.save_to_disk`` or
            ``DatasetDict.save_to_disk``, or a folder of data files laid out like a Hub dataset repository (read
            by ``datasets.load_dataset``, splits named by the files); a ``Dataset``; a ``DatasetDict``; a list of
            row dicts or a pandas ``DataFrame``; or the id of a Hugging Face Hub dataset (a string that is no
            existing path and has no data-file suffix), loaded with ``datasets.load_dataset``.
        split: the split to take from a ``DatasetDict``, a saved ``DatasetDict`` folder or a Hub dataset; ignored
            for a single file.
        config_name: the Hub dataset's configuration (``load_dataset``'s ``name``); only for a Hub id.
        on_bad_row: ``"error"`` (the default) raises at the first bad row; ``"skip"`` leaves bad rows (and lines
            that are not valid JSON) out, logs how many with the first reasons, and appends each reason to
            ``skipped`` when a list is given.

    Returns:
        The rows as a ``Dataset`` with ``chosen``, ``rejected``, ``prompt`` when given, and any extra columns.

    Raises:
        PreferenceDataError: a row is malformed (the message names the source, row and field), a split is
            missing, or the file type is not supported.
        FileNotFoundError: ``source`` is a path that does not exist.
        tidpo.hub.HubLoadError: a Hub id that could not be loaded (offline, unknown, gated), in one line.
        TypeError: ``source`` is none of the types above.
    """
    if on_bad_row not in ("error", "skip"):
        raise ValueError(f"on_bad_row must be 'error' or 'skip', got {on_bad_row!r}")
    skip = on_bad_row == "skip"
    bad: list[str] = [] if skipped is None else skipped
    if isinstance(source, DatasetDict):
        dataset, name = _pick_split(source, split, "<DatasetDict>")
    elif isinstance(source, Dataset):
        dataset, name = source, "<Dataset>"
    elif isinstance(source, list | tuple) or type(source).__name__ == "DataFrame":  # rows in memory
        return _dataset_from_records(_in_memory_records(source, bad if skip else None), "<rows>", bad if skip else None)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.suffix.lower() in (".jsonl", ".json", ".csv"):
            return _dataset_from_records(_read_records(path, bad if skip else None), str(path), bad if skip else None)
        if _is_hub_id(source):
            dataset, name = _load_hub_dataset(str(source), config_name, split)
        else:
            dataset, name = _load_arrow_source(path, split)
    else:
        raise TypeError(
            "preference data source must be a file or folder path, a datasets.Dataset, a datasets.DatasetDict, a "
            f"list of row dicts or a pandas DataFrame, got {type(source).__name__}"
        )
    if not skip:
        validate_preference_dataset(dataset, name)
        return dataset
    good = _check_columns_and_rows(dataset, name, bad)
    return dataset if len(good) == len(dataset) else dataset.select(good)


def _in_memory_records(source, bad: list[str] | None) -> _Records:
    """The rows of a list of dicts or a pandas ``DataFrame``, named ``row N``; with ``bad`` (skip mode), items that
    are no mapping are left out and their reasons appended to it."""
    items = source.to_dict("records") if type(source).__name__ == "DataFrame" else list(source)
    rows, labels, unparsed = [], [], 0
    for number, row in enumerate(items, 1):
        if not isinstance(row, Mapping):
            error = PreferenceDataError(f"<rows>, row {number}: expected a mapping, got {type(row).__name__}")
            if bad is None:
                raise error
            bad.append(str(error))
            unparsed += 1
            continue
        rows.append(dict(row))
        labels.append(f"row {number}")
    return _Records(rows, labels, unparsed)


def _report_skipped(source: str, bad: list[str], start: int, total: int) -> None:
    if len(bad) > start:
        shown = "; ".join(bad[start : start + 3])
        more = f" (and {len(bad) - start - 3} more)" if len(bad) - start > 3 else ""
        logger.warning(f"{source}: skipped {len(bad) - start} of {total} rows (on_bad_row='skip'): {shown}{more}")


def validate_preference_dataset(dataset: Dataset, source: str = "<Dataset>") -> str:
    """Checks every row of a ``Dataset`` against the preference contract (module docstring).

    Args:
        dataset: the rows to check.
        source: how error messages name the dataset.

    Returns:
        The format, ``"standard"`` or ``"conversational"``.

    Raises:
        PreferenceDataError: a required column is missing or a row is malformed.
    """
    fields = _preference_columns(dataset, source)
    return _validate_rows(((f"row {number}", row) for number, row in enumerate(fields, 1)), source)


def _preference_columns(dataset: Dataset, source: str) -> Dataset:
    """The preference columns of ``dataset``; a missing required one is an error naming the source and columns."""
    missing = [column for column in REQUIRED_FIELDS if column not in dataset.column_names]
    if missing:
        raise PreferenceDataError(
            f"{source}: missing required column(s) {missing}; the columns are {dataset.column_names}"
        )
    return dataset.select_columns([column for column in FIELDS if column in dataset.column_names])


def _check_columns_and_rows(dataset: Dataset, source: str, bad: list[str]) -> list[int]:
    """The indices of the good rows of ``dataset`` (skip mode); the reasons for the others go to ``bad``."""
    fields = _preference_columns(dataset, source)
    start = len(bad)
    good = _good_rows(((f"row {number}", row) for number, row in enumerate(fields, 1)), source, bad)
    _report_skipped(source, bad, start, len(dataset))
    return good


def _dataset_from_records(records: _Records, source: str, bad: list[str] | None = None) -> Dataset:
    """Checks rows read from a file, then builds the ``Dataset`` (columns: the union of the rows' keys). With
    ``bad`` (skip mode), bad rows are left out and their reasons appended to it."""
    if bad is None:
        _validate_rows(zip(records.labels, records.rows, strict=True), source)
    else:
        start = len(bad) - records.unparsed
        keep = _good_rows(zip(records.labels, records.rows, strict=True), source, bad)
        records = _Records([records.rows[i] for i in keep], [records.labels[i] for i in keep])
        _report_skipped(source, bad, start, len(records.rows) + len(bad) - start)
    columns = dict.fromkeys(key for row in records.rows for key in row)
    data = {column: [row.get(column) for row in records.rows] for column in columns}
    try:
        return Dataset.from_dict(data)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise _mixed_column_error(data, records.labels, source, err) from err


def _mixed_column_error(data: dict[str, list], labels: list[str], source: str, err: Exception) -> PreferenceDataError:
    """Names the column, and the first row, whose values Arrow cannot put in one typed column."""
    for column, values in data.items():
        if _arrow_problem(values) is None:
            continue
        low, high = 0, len(values) - 1  # the shortest failing prefix ends at the first row that breaks the type
        while low < high:
            middle = (low + high) // 2
            low, high = (low, middle) if _arrow_problem(values[: middle + 1]) else (middle + 1, high)
        value = values[low]
        found = f"{type(value).__name__} {value!r:.60}"
        return PreferenceDataError(
            f"{source}, {labels[low]}, field {column!r}: its value ({found}) does not share one type with the rows "
            f"before it ({_arrow_problem(values[: low + 1])})"
        )
    return PreferenceDataError(f"{source}: the rows cannot be stored as a dataset: {err}")


def _arrow_problem(values: list) -> str | None:
    """Why Arrow cannot store ``values`` as one column, or None."""
    try:
        pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        return str(err)
    return None


def _is_hub_id(source: str | os.PathLike) -> bool:
    from tidpo.hub import looks_like_hub_id

    return (
        isinstance(source, str)
        and not Path(source).exists()
        and Path(source).suffix.lower() not in FILE_SUFFIXES
        and looks_like_hub_id(source)
    )


def _load_hub_dataset(name: str, config_name: str | None, split: str) -> tuple[Dataset, str]:
    """``datasets.load_dataset(name, config_name, split=split)``, its failures in one line."""
    import datasets

    from tidpo.hub import hub_failure

    try:
        dataset = datasets.load_dataset(name, config_name, split=split)
    except (ConnectionError, FileNotFoundError) as err:  # offline, unreachable, no such dataset
        raise hub_failure("dataset", name, err, "a local file or folder, or a built-in dataset") from err
    except ValueError as err:  # an unknown split or configuration
        first = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise PreferenceDataError(
            f"Hub dataset {name!r} (configuration {config_name!r}, split {split!r}): {first}"
        ) from err
    if not isinstance(dataset, Dataset):
        raise PreferenceDataError(f"Hub dataset {name!r}: split {split!r} is not a plain (non-streaming) Dataset")
    return dataset, f"{name}[{split!r}]"


def _load_arrow_source(path: Path, split: str) -> tuple[Dataset, str]:
    """A parquet file or a ``save_to_disk`` folder, and the name that error messages give it."""
    if not path.exists():
        raise FileNotFoundError(f"preference data not found: {path}")
    if path.is_dir():
        return _load_saved_folder(path, split)
    if path.suffix.lower() == ".parquet":
        return Dataset(InMemoryTable(pq.read_table(path))), str(path)
    raise PreferenceDataError(
        f"{path}: unsupported file type {path.suffix!r}; expected one of {', '.join(FILE_SUFFIXES)}, or a folder "
        "written by Dataset.save_to_disk / DatasetDict.save_to_disk"
    )


def _load_saved_folder(path: Path, split: str) -> tuple[Dataset, str]:
    if (path / "dataset_dict.json").is_file():
        return _pick_split(DatasetDict.load_from_disk(str(path)), split, str(path))
    if (path / "state.json").is_file():
        return Dataset.load_from_disk(str(path)), str(path)
    if (path / "config.json").is_file() and (
        (path / "tokenizer_config.json").is_file() or any(path.glob("*.safetensors"))
    ):
        raise PreferenceDataError(f"{path}: a model folder (config.json, weights or tokenizer), not preference data")
    if _data_files(path):
        return _load_data_folder(path, split)
    raise PreferenceDataError(
        f"{path}: a folder, but not one written by Dataset.save_to_disk or DatasetDict.save_to_disk "
        f"(it has neither dataset_dict.json nor state.json) and it holds no data files ({', '.join(FILE_SUFFIXES)})"
    )


def _data_files(folder: Path) -> list[Path]:
    """The data files under ``folder`` (hidden files and folders left out)."""
    return [
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in FILE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]  # fmt: skip


def _load_data_folder(path: Path, split: str) -> tuple[Dataset, str]:
    """A folder of data files laid out like a Hub dataset repository (``data/train-*.parquet``, ``test.jsonl``,
    ...), read by ``datasets.load_dataset``, which names the splits after the files."""
    from datasets import load_dataset

    try:
        datasets = load_dataset(str(path))
    except Exception as err:  # datasets raises many types for files it cannot read
        cause = err.__cause__ or err.__context__
        why = " ".join(str(err).split()) + (f": {' '.join(str(cause).split())[:300]}" if cause is not None else "")
        raise PreferenceDataError(
            f"{path}: a folder of data files that datasets.load_dataset cannot read ({why})"
        ) from err
    return _pick_split(datasets, split, str(path))


def _pick_split(datasets: DatasetDict, split: str, source: str) -> tuple[Dataset, str]:
    if split not in datasets:
        raise PreferenceDataError(
            f"{source}: no split {split!r}; the available splits are {', '.join(map(repr, datasets))}"
        )
    return datasets[split], f"{source}[{split!r}]"


def _read_records(path: Path, bad: list[str] | None = None) -> _Records:
    """Rows of a JSON Lines, JSON or CSV file, parsed here so that errors can name the line. With ``bad`` (skip
    mode), JSON Lines lines that do not parse are left out and their reasons appended to it."""
    if not path.is_file():
        raise FileNotFoundError(f"preference data not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise PreferenceDataError(
            f"{path}, line {line}: not UTF-8 text (byte {raw[err.start]:#04x} at offset {err.start}); save the file "
            "as UTF-8"
        ) from err
    if suffix == ".json" and text.lstrip().startswith("["):
        return _read_json_array(path, text)
    if suffix == ".json" and text.lstrip().startswith("{"):
        columns = _json_columns(path, text)
        if columns is not None:
            return columns
    return _read_json_lines(path, text, bad)


def _json_columns(path: Path, text: str) -> _Records | None:
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
    rows = [dict(zip(data, values, strict=True)) for values in zip(*data.values(), strict=True)]
    return _Records(rows, [f"row {number}" for number in range(1, len(rows) + 1)])


def _read_json_lines(path: Path, text: str, bad: list[str] | None = None) -> _Records:
    rows, labels, unparsed = [], [], 0
    # Deviation from str.splitlines: JSON strings may hold raw U+2028, which splitlines() would break on.
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise PreferenceDataError(f"{path}, line {number}: expected a JSON object, got {type(row).__name__}")
        except json.JSONDecodeError as err:
            error = PreferenceDataError(
                f"{path}, line {number}: not valid JSON ({err.msg}, column {err.colno}); each line of a JSON Lines "
                "file must hold one complete JSON object"
            )
            if bad is None:
                raise error from err
            bad.append(str(error))
            unparsed += 1
            continue
        except PreferenceDataError as error:
            if bad is None:
                raise
            bad.append(str(error))
            unparsed += 1
            continue
        rows.append(row)
        labels.append(f"line {number}")
    return _Records(rows, labels, unparsed)


def _read_json_array(path: Path, text: str) -> _Records:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise PreferenceDataError(f"{path}, line {err.lineno}: not valid JSON ({err.msg}, column {err.colno})") from err
    for number, row in enumerate(data, 1):
        if not isinstance(row, dict):
            raise PreferenceDataError(f"{path}, row {number}: expected a JSON object, got {type(row).__name__}")
    return _Records(data, [f"row {number}" for number in range(1, len(data) + 1)])


def _read_csv(path: Path) -> _Records:
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
    records = [dict(zip(header, values, strict=True)) for values in rows]
    return _Records(records, [f"row {number}" for number in range(1, len(rows) + 1)])


def _validate_rows(rows: Iterable[tuple[str, Mapping[str, Any]]], source: str) -> str:
    """Checks ``(label, row)`` pairs; the first row sets the format and whether a prompt is given."""
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        raise PreferenceDataError(f"{source}: no rows")
    first_label, first_row = first
    fmt = _detect_format(first_row, f"{source}, {first_label}")
    explicit_prompt = "prompt" in first_row
    for label, row in itertools.chain([first], rows):
        _check_row(row, f"{source}, {label}", fmt, explicit_prompt, first_label)
    return fmt


def _good_rows(rows: Iterable[tuple[str, Mapping[str, Any]]], source: str, bad: list[str]) -> list[int]:
    """Like :func:`_validate_rows`, but a bad row is noted in ``bad`` and left out; the first good row sets the
    format. Returns the indices of the good rows."""
    good, fmt, explicit_prompt, first_label = [], None, False, ""
    for index, (label, row) in enumerate(rows):
        try:
            if fmt is None:
                row_fmt = _detect_format(row, f"{source}, {label}")
                _check_row(row, f"{source}, {label}", row_fmt, "prompt" in row, label)
                fmt, explicit_prompt, first_label = row_fmt, "prompt" in row, label
            else:
                _check_row(row, f"{source}, {label}", fmt, explicit_prompt, first_label)
        except PreferenceDataError as err:
            bad.append(str(err))
            continue
        good.append(index)
    if not good and not bad:
        raise PreferenceDataError(f"{source}: no rows")
    if not good:
        raise PreferenceDataError(f"{source}: every row is bad ({len(bad)}); the first: {bad[0]}")
    return good


def _detect_format(row: Mapping[str, Any], where: str) -> str:
    chosen = row.get("chosen", _MISSING)
    if isinstance(chosen, str):
        return STANDARD
    if isinstance(chosen, list):
        return CONVERSATIONAL
    raise PreferenceDataError(
        f"{where}, field 'chosen': expected {_EXPECTED[STANDARD]} (standard format) or {_EXPECTED[CONVERSATIONAL]} "
        f"(conversational format), got {_describe(chosen, 'chosen')}"
    )


def _check_row(row: Mapping[str, Any], where: str, fmt: str, explicit_prompt: bool, first_label: str) -> None:
    if not explicit_prompt and "prompt" in row:
        raise PreferenceDataError(
            f"{where}, field 'prompt': expected no prompt (implicit prompt, as in {first_label}), "
            f"got {_describe(row['prompt'], 'prompt')}"
        )
    for field in FIELDS if explicit_prompt else REQUIRED_FIELDS:
        value = row.get(field, _MISSING)
        problem = _text_problem(value, field) if fmt == STANDARD else _messages_problem(value, field)
        if problem is not None:
            raise PreferenceDataError(
                f"{where}, field '{field}': expected {_EXPECTED[fmt]} ({fmt} format, as in {first_label}), "
                f"got {problem}"
            )
    if fmt == CONVERSATIONAL:
        for field in FIELDS if explicit_prompt else REQUIRED_FIELDS:
            problem = _turns_problem(row[field], field, explicit_prompt)
            if problem is not None:
                raise PreferenceDataError(f"{where}, field '{field}': {problem}")
    if row["chosen"] == row["rejected"]:
        raise PreferenceDataError(
            f"{where}, fields 'chosen' and 'rejected': the two responses are identical, so the pair prefers nothing"
        )


ROLES = ("system", "developer", "user", "assistant", "tool")


def _turns_problem(messages: list, field: str, explicit_prompt: bool) -> str | None:
    """Roles that a chat template would render wrongly: unknown roles, a response that is not the assistant's, a
    prompt that ends with the assistant (nothing left to answer), a system message after the first."""
    for number, message in enumerate(messages, 1):
        role = message["role"]
        if role not in ROLES:
            return f"message {number} has role {role!r}, not one of {', '.join(ROLES)}"
        if role in ("system", "developer") and number > 1:
            return f"message {number} is a {role!r} message after the first"
        if field != "prompt" and role == "assistant" and not message["content"].strip():
            return f"message {number} (the assistant's) has only whitespace"
    last = messages[-1]["role"]
    if field == "prompt":
        return "the prompt ends with an 'assistant' message: the response must answer a user turn" if (
            last == "assistant") else None  # fmt: skip
    if last != "assistant":
        return f"the response must end with an 'assistant' message, its last is {last!r}"
    if explicit_prompt:
        other = next((m["role"] for m in messages if m["role"] not in ("assistant", "tool")), None)
        if other is not None:
            return f"holds a {other!r} message: with a separate prompt, a response holds the assistant's turns only"
    return None


def _text_problem(value: Any, field: str) -> str | None:
    """What is wrong with a standard-format field, or None."""
    if isinstance(value, str) and value.strip():
        return None
    if isinstance(value, str) and value:
        return "a string of only whitespace"
    return _describe(value, field)


def _messages_problem(value: Any, field: str) -> str | None:
    """What is wrong with a conversational field, or None."""
    if not isinstance(value, list) or not value:
        return _describe(value, field)
    for number, message in enumerate(value, 1):
        if not isinstance(message, Mapping):
            return f"a list whose message {number} is {type(message).__name__}"
        for key in ("role", "content"):
            # A None value counts as absent: Arrow fills keys that only some messages have with None.
            if message.get(key) is None:
                return f"a list whose message {number} has no {key!r}"
            if not isinstance(message[key], str):
                return f"a list whose message {number} has a {key!r} of type {type(message[key]).__name__}"
        if not message["role"]:
            return f"a list whose message {number} has an empty 'role'"
    return None


def _describe(value: Any, field: str) -> str:
    """A short description of a found value: its type, or what makes it empty."""
    if value is _MISSING:
        return f"nothing (the row has no {field!r})"
    if value is None:
        return "None"
    if isinstance(value, str) and not value:
        return "an empty string"
    if isinstance(value, list) and not value:
        return "an empty list"
    return type(value).__name__
