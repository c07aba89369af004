"""Rows parsed by tidpo itself (text files, rows in memory), kept with their labels until they become a ``Dataset``.

A reader never decides what a bad entry means: an entry that is no row at all (a line that is not valid JSON, an
item that is no mapping) is kept as its :class:`~tidpo.data.PreferenceDataError`, and the caller's ``on_bad_row``
policy (:func:`tidpo.data.load_preference_data`) raises it or leaves it out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from datasets import Dataset

from tidpo.data.errors import PreferenceDataError


@dataclass(frozen=True)
class Records:
    """Rows read from one source, each with the label that names it in messages (``line 7``, ``row 7``).

    Attributes:
        rows: the rows, in the source's order.
        labels: one per row.
        unreadable: the entries that are no row, as the errors that name them, in the source's order.
    """

    rows: list[dict[str, Any]]
    labels: list[str]
    unreadable: list[PreferenceDataError] = field(default_factory=list)

    @classmethod
    def numbered(cls, rows: list[dict[str, Any]]) -> Records:
        """Rows labelled by their 1-based position, ``row N``."""
        return cls(rows, [f"row {number}" for number in range(1, len(rows) + 1)])

    def pairs(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """``(label, row)`` for each row."""
        return zip(self.labels, self.rows, strict=True)

    def subset(self, keep: Sequence[int]) -> Records:
        """The rows at the indices ``keep``, with their labels (the unreadable entries left out)."""
        return Records([self.rows[i] for i in keep], [self.labels[i] for i in keep])


def dataset_from_records(records: Records, source: str) -> Dataset:
    """The rows as a ``Dataset`` (columns: the union of the rows' keys, in order of first appearance).

    Raises:
        PreferenceDataError: a column whose values Arrow cannot store with one type; the message names the row.
    """
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
