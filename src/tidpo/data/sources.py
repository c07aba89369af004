"""Where preference rows come from, and the name and row labels that messages give them.

* a ``.jsonl``, ``.json`` or ``.csv`` file: parsed by tidpo (:mod:`tidpo.data.text_files`); rows ``line N`` in
  JSON Lines, ``row N`` otherwise;
* a ``.parquet`` file; a folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``; a folder of
  data files laid out like a Hub dataset repository (``data/train-*.parquet``, ``test.jsonl``, ...), read by
  ``datasets.load_dataset``, which names the splits after the files;
* a ``Dataset``, or a ``DatasetDict`` and a split;
* rows in memory: a list of row dicts or a pandas ``DataFrame`` (source ``<rows>``);
* the id of a Hugging Face Hub dataset (a string that is no existing path and has no data-file suffix), loaded
  with ``datasets.load_dataset``.

Arrow-backed sources come back as a ``Dataset`` whose rows are labelled ``row N`` (the 1-based position); files
parsed here and rows in memory as :class:`~tidpo.data.records.Records`. Nothing here checks a row: the contract is
:mod:`tidpo.data.contract`, and what a bad row means is decided by :func:`tidpo.data.load_preference_data`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from datasets import Dataset, DatasetDict
from datasets.table import InMemoryTable

from tidpo.data.errors import PreferenceDataError
from tidpo.data.records import Records
from tidpo.data.text_files import TEXT_SUFFIXES, read_records

FILE_SUFFIXES = (*TEXT_SUFFIXES, ".parquet")


def open_source(source: Any, split: str, config_name: str | None) -> tuple[Dataset | Records, str]:
    """The rows of ``source`` (any of the forms in the module docstring) and the name messages give it.

    Raises:
        PreferenceDataError: a split is missing, or a file or folder is of no supported kind.
        FileNotFoundError: ``source`` is a path that does not exist.
        tidpo.hub.HubLoadError: a Hub id that could not be loaded (offline, unknown, gated), in one line.
        TypeError: ``source`` is none of the supported types.
    """
    if isinstance(source, DatasetDict):
        return pick_split(source, split, "<DatasetDict>")
    if isinstance(source, Dataset):
        return source, "<Dataset>"
    if isinstance(source, list | tuple) or _is_data_frame(source):
        return records_in_memory(source), "<rows>"
    if isinstance(source, (str, os.PathLike)):
        return _open_path(source, split, config_name)
    raise TypeError(
        "preference data source must be a file or folder path, a datasets.Dataset, a datasets.DatasetDict, a "
        f"list of row dicts or a pandas DataFrame, got {type(source).__name__}"
    )


def _is_data_frame(source: Any) -> bool:
    """A pandas ``DataFrame``, recognised by name so that pandas need not be imported."""
    return type(source).__name__ == "DataFrame"


def _open_path(source: str | os.PathLike, split: str, config_name: str | None) -> tuple[Dataset | Records, str]:
    """A text file parsed here, a Hub id, or a Parquet file or folder read by ``datasets``."""
    path = Path(source)
    if path.suffix.lower() in TEXT_SUFFIXES:
        return read_records(path), str(path)
    if _is_hub_id(source):
        return _load_hub_dataset(str(source), config_name, split)
    return _load_arrow_source(path, split)


def records_in_memory(source: Any) -> Records:
    """The rows of a list of dicts or a pandas ``DataFrame``, named ``row N``; an item that is no mapping is kept
    as an unreadable entry."""
    items = source.to_dict("records") if _is_data_frame(source) else list(source)
    rows, labels, unreadable = [], [], []
    for number, row in enumerate(items, 1):
        if not isinstance(row, Mapping):
            unreadable.append(
                PreferenceDataError(f"<rows>, row {number}: expected a mapping, got {type(row).__name__}")
            )
            continue
        rows.append(dict(row))
        labels.append(f"row {number}")
    return Records(rows, labels, unreadable)


def _is_hub_id(source: str | os.PathLike) -> bool:
    """A string that names no existing path, has no data-file suffix, and has the shape of a Hub id."""
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
    """A parquet file or a folder, and the name that error messages give it."""
    if not path.exists():
        raise FileNotFoundError(f"preference data not found: {path}")
    if path.is_dir():
        return _load_folder(path, split)
    if path.suffix.lower() == ".parquet":
        return Dataset(InMemoryTable(pq.read_table(path))), str(path)
    raise PreferenceDataError(
        f"{path}: unsupported file type {path.suffix!r}; expected one of {', '.join(FILE_SUFFIXES)}, or a folder "
        "written by Dataset.save_to_disk / DatasetDict.save_to_disk"
    )


def _load_folder(path: Path, split: str) -> tuple[Dataset, str]:
    """A ``save_to_disk`` folder or a folder of data files; a model folder, or any other, is an error."""
    if (path / "dataset_dict.json").is_file():
        return pick_split(DatasetDict.load_from_disk(str(path)), split, str(path))
    if (path / "state.json").is_file():
        return Dataset.load_from_disk(str(path)), str(path)
    if (path / "config.json").is_file() and (
        (path / "tokenizer_config.json").is_file() or any(path.glob("*.safetensors"))
    ):
        raise PreferenceDataError(f"{path}: a model folder (config.json, weights or tokenizer), not preference data")
    if any(_is_data_file(file, path) for file in path.rglob("*")):
        return _load_data_folder(path, split)
    raise PreferenceDataError(
        f"{path}: a folder, but not one written by Dataset.save_to_disk or DatasetDict.save_to_disk "
        f"(it has neither dataset_dict.json nor state.json) and it holds no data files ({', '.join(FILE_SUFFIXES)})"
    )


def _is_data_file(file: Path, folder: Path) -> bool:
    """A file under ``folder`` with a data-file suffix, neither hidden nor in a hidden folder."""
    hidden = any(part.startswith(".") for part in file.relative_to(folder).parts)
    return file.is_file() and file.suffix.lower() in FILE_SUFFIXES and not hidden


def _load_data_folder(path: Path, split: str) -> tuple[Dataset, str]:
    """A folder of data files laid out like a Hub dataset repository, read by ``datasets.load_dataset``."""
    from datasets import load_dataset

    try:
        datasets = load_dataset(str(path))
    except Exception as err:  # datasets raises many types for files it cannot read
        cause = err.__cause__ or err.__context__
        why = " ".join(str(err).split()) + (f": {' '.join(str(cause).split())[:300]}" if cause is not None else "")
        raise PreferenceDataError(
            f"{path}: a folder of data files that datasets.load_dataset cannot read ({why})"
        ) from err
    return pick_split(datasets, split, str(path))


def pick_split(datasets: DatasetDict, split: str, source: str) -> tuple[Dataset, str]:
    """``datasets[split]`` and its name in messages (``source['split']``); a missing split is an error naming the
    available ones."""
    if split not in datasets:
        raise PreferenceDataError(
            f"{source}: no split {split!r}; the available splits are {', '.join(map(repr, datasets))}"
        )
    return datasets[split], f"{source}[{split!r}]"
