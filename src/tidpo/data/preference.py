"""Loading preference data: a source (:mod:`tidpo.data.sources`) checked against the row contract
(:mod:`tidpo.data.contract`), with the ``on_bad_row`` policy applied in one place.

Every row is checked before anything is returned, so a bad row fails here, with its file and line, rather than in
the middle of training. With ``on_bad_row="skip"``, the readers still only report what they found (rows, and
entries that are no row); this module leaves the bad ones out, counts them and logs the first reasons.
"""

from __future__ import annotations

import logging
import os

from datasets import Dataset, DatasetDict

from tidpo.data.contract import (
    CONVERSATIONAL,
    FIELDS,
    REQUIRED_FIELDS,
    ROLES,
    STANDARD,
    RowContract,
    check_rows,
    labelled_rows,
    preference_columns,
    validate_preference_dataset,
)
from tidpo.data.errors import PreferenceDataError
from tidpo.data.records import Records, dataset_from_records
from tidpo.data.sources import FILE_SUFFIXES, open_source

__all__ = [
    "CONVERSATIONAL",
    "FIELDS",
    "FILE_SUFFIXES",
    "REQUIRED_FIELDS",
    "ROLES",
    "STANDARD",
    "load_preference_data",
    "validate_preference_dataset",
]

logger = logging.getLogger("tidpo.data")


def load_preference_data(
    source: str | os.PathLike | Dataset | DatasetDict | list[dict],
    split: str = "train",
    config_name: str | None = None,
    on_bad_row: str = "error",
    skipped: list[str] | None = None,
) -> Dataset:
    """Loads preference data and checks every row.

    Args:
        source: a ``.jsonl``, ``.json``, ``.csv`` or ``.parquet`` file; a ``save_to_disk`` folder or a folder of
            data files laid out like a Hub dataset repository; a ``Dataset``; a ``DatasetDict``; a list of row
            dicts or a pandas ``DataFrame``; or a Hub dataset id. :mod:`tidpo.data.sources` says how each is read.
        split: the split to take from a ``DatasetDict``, a saved ``DatasetDict`` folder or a Hub dataset; ignored
            for a single file.
        config_name: the Hub dataset's configuration (``load_dataset``'s ``name``); only for a Hub id.
        on_bad_row: ``"error"`` (the default) raises at the first bad row; ``"skip"`` leaves bad rows (and lines
            that are not valid JSON) out, and logs how many with the first reasons.
        skipped: in skip mode, a list that each left-out row's reason is appended to.

    Returns:
        The rows as a ``Dataset`` with ``chosen``, ``rejected``, ``prompt`` when given, and any extra columns.

    Raises:
        PreferenceDataError: a row is malformed (the message names the source, row and field), no row is left, a
            split is missing, or the file type is not supported.
        FileNotFoundError, tidpo.hub.HubLoadError, TypeError: as :func:`tidpo.data.sources.open_source` raises.
    """
    if on_bad_row not in ("error", "skip"):
        raise ValueError(f"on_bad_row must be 'error' or 'skip', got {on_bad_row!r}")
    rows, name = open_source(source, split, config_name)
    if on_bad_row == "error":
        return _keep_all_or_raise(rows, name)
    return _leave_bad_rows_out(rows, name, skipped)


def _keep_all_or_raise(rows: Dataset | Records, name: str) -> Dataset:
    """Error mode: the first entry that is no row, else the first row that breaks the contract, raises."""
    if isinstance(rows, Dataset):
        validate_preference_dataset(rows, name)
        return rows
    if rows.unreadable:
        raise rows.unreadable[0]
    check_rows(rows.pairs(), name)
    return dataset_from_records(rows, name)


def _leave_bad_rows_out(rows: Dataset | Records, name: str, skipped: list[str] | None) -> Dataset:
    """Skip mode: the good rows, once the reasons of the others are appended to ``skipped`` and logged."""
    earlier = [] if skipped is None else list(skipped)
    good, reasons = _sort_rows(rows, name)
    if skipped is not None:
        skipped.extend(reasons)
    if not good:
        # The count and the first reason take in those of earlier loads into the same `skipped` list.
        bad = earlier + reasons
        if not bad:
            raise PreferenceDataError(f"{name}: no rows")
        raise PreferenceDataError(f"{name}: every row is bad ({len(bad)}); the first: {bad[0]}")
    _log_skipped(name, reasons, len(good) + len(reasons))
    if isinstance(rows, Dataset):
        return rows if len(good) == len(rows) else rows.select(good)
    return dataset_from_records(rows.subset(good), name)


def _sort_rows(rows: Dataset | Records, name: str) -> tuple[list[int], list[str]]:
    """The indices of the rows that keep the contract, and the reasons for leaving out the others: first the
    entries that are no row, then the rows that break the contract, each group in the source's order."""
    if isinstance(rows, Dataset):
        pairs, reasons = labelled_rows(preference_columns(rows, name)), []
    else:
        pairs, reasons = rows.pairs(), [str(problem) for problem in rows.unreadable]
    contract, good = RowContract(name), []
    for index, (label, row) in enumerate(pairs):
        try:
            contract.check(label, row)
        except PreferenceDataError as err:  # the skip policy: the row is left out, its reason kept
            reasons.append(str(err))
            continue
        good.append(index)
    contract.warn_identical()
    return good, reasons


def _log_skipped(source: str, reasons: list[str], total: int) -> None:
    """One warning: how many of ``total`` rows were left out, and the first three reasons."""
    if reasons:
        shown = "; ".join(reasons[:3])
        more = f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else ""
        logger.warning(f"{source}: skipped {len(reasons)} of {total} rows (on_bad_row='skip'): {shown}{more}")
