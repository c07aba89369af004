"""What a valid preference row is: TRL's preference dataset type (``prompt``, ``chosen``, ``rejected``).

Two formats, as in TRL:

* standard: ``prompt``, ``chosen`` and ``rejected`` are non-empty strings; the completion continues the prompt's
  text directly (``prompt + chosen``), so the separating space belongs to one of them;
* conversational: each field is a non-empty list of ``{"role": str, "content": str}`` messages; ``chosen`` and
  ``rejected`` hold the assistant turn(s). An assistant message with ``tool_calls`` may have no content, and
  ``tool`` messages hold tool results (rendered by the chat template's tool support, with the row's ``tools``).

``prompt`` is optional (implicit prompt): ``chosen`` and ``rejected`` then hold the whole text or conversation, and
the prompt is their shared beginning, found at tokenisation (:mod:`tidpo.data.tokenization`).

The first row sets the format and whether a prompt is given; every row must match it. A pair whose two responses
are identical is kept, as TRL keeps it, and counted in one warning. A broken rule is a
:class:`~tidpo.data.PreferenceDataError` of one line that names the source, the row (its label, e.g. ``line 7``,
see :mod:`tidpo.data.sources`) and the field, what was expected and what was found.
Extra columns are allowed and not checked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from datasets import Dataset

from tidpo.data.errors import PreferenceDataError

logger = logging.getLogger("tidpo.data")

STANDARD = "standard"
CONVERSATIONAL = "conversational"
REQUIRED_FIELDS = ("chosen", "rejected")
FIELDS = ("prompt", *REQUIRED_FIELDS)
ROLES = ("system", "developer", "user", "assistant", "tool")

_EXPECTED = {
    STANDARD: "a non-empty string",
    CONVERSATIONAL: 'a non-empty list of {"role": str, "content": str} messages',
}
_MISSING = object()


class RowContract:
    """Checks rows one by one; the first row that passes sets the format and the prompt choice for the others.

    Attributes:
        source: how messages name the rows' source (a file path, ``<Dataset>``, ``<rows>``).
        fmt: ``"standard"`` or ``"conversational"``, once a row has passed; None before.
        explicit_prompt: whether that first row has a ``prompt``.
        first_label: that first row's label, quoted in messages (``as in line 1``).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.fmt: str | None = None
        self.explicit_prompt = False
        self.first_label = ""
        self.checked = 0
        self.identical: list[str] = []

    def check(self, label: str, row: Mapping[str, Any]) -> None:
        """Raises :class:`PreferenceDataError` (naming the source, ``label`` and the field) unless ``row`` is valid.
        A pair whose two responses are identical is valid (TRL trains on it); its label is kept in ``identical``."""
        where = f"{self.source}, {label}"
        if self.fmt is not None:
            _check_row(row, where, self.fmt, self.explicit_prompt, self.first_label)
        else:
            fmt = _detect_format(row, where)
            _check_row(row, where, fmt, "prompt" in row, label)
            self.fmt, self.explicit_prompt, self.first_label = fmt, "prompt" in row, label
        self.checked += 1
        if row["chosen"] == row["rejected"]:
            self.identical.append(label)

    def warn_identical(self) -> None:
        """One warning for the pairs whose two responses are identical, with their count (none: nothing)."""
        if self.identical:
            logger.warning(
                "%s: %d of %d pairs have identical chosen and rejected responses (the first: %s); they are kept, "
                "as TRL keeps them: their DPO log-ratios cancel (no gradient from the preference term), while "
                "the TDPO KL term and the triplet term still train on them",
                self.source,
                len(self.identical),
                self.checked,
                self.identical[0],
            )


def check_rows(rows: Iterable[tuple[str, Mapping[str, Any]]], source: str) -> str:
    """Checks ``(label, row)`` pairs, raising at the first bad one; returns the format. No rows is an error."""
    contract = RowContract(source)
    for label, row in rows:
        contract.check(label, row)
    if contract.fmt is None:
        raise PreferenceDataError(f"{source}: no rows")
    contract.warn_identical()
    return contract.fmt


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
    return check_rows(labelled_rows(preference_columns(dataset, source)), source)


def preference_columns(dataset: Dataset, source: str) -> Dataset:
    """The preference columns of ``dataset``; a missing required one is an error naming the source and columns."""
    missing = [column for column in REQUIRED_FIELDS if column not in dataset.column_names]
    if missing:
        raise PreferenceDataError(
            f"{source}: missing required column(s) {missing}; the columns are {dataset.column_names}"
        )
    return dataset.select_columns([column for column in FIELDS if column in dataset.column_names])


def labelled_rows(dataset: Iterable[Mapping[str, Any]]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The rows of a ``Dataset`` with their labels, ``row N`` (1-based)."""
    return ((f"row {number}", row) for number, row in enumerate(dataset, 1))


def _detect_format(row: Mapping[str, Any], where: str) -> str:
    """The format that the type of ``chosen`` says; anything but a string or a list is an error."""
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
    """One row against the format and prompt choice of the first row (``first_label``)."""
    if not explicit_prompt and "prompt" in row:
        raise PreferenceDataError(
            f"{where}, field 'prompt': expected no prompt (implicit prompt, as in {first_label}), "
            f"got {_describe(row['prompt'], 'prompt')}"
        )
    fields = FIELDS if explicit_prompt else REQUIRED_FIELDS
    _check_field_types(row, where, fmt, fields, first_label)
    if fmt == CONVERSATIONAL:
        _check_turns(row, where, fields, explicit_prompt)


def _check_field_types(row: Mapping[str, Any], where: str, fmt: str, fields: tuple[str, ...], first_label: str) -> None:
    """Each field holds what its format expects (a non-empty string, or a non-empty list of messages)."""
    for field in fields:
        value = row.get(field, _MISSING)
        problem = _text_problem(value, field) if fmt == STANDARD else _messages_problem(value, field)
        if problem is not None:
            raise PreferenceDataError(
                f"{where}, field '{field}': expected {_EXPECTED[fmt]} ({fmt} format, as in {first_label}), "
                f"got {problem}"
            )


def _check_turns(row: Mapping[str, Any], where: str, fields: tuple[str, ...], explicit_prompt: bool) -> None:
    """The conversational fields' roles are ones a chat template renders as meant (:func:`_turns_problem`)."""
    for field in fields:
        problem = _turns_problem(row[field], field, explicit_prompt)
        if problem is not None:
            raise PreferenceDataError(f"{where}, field '{field}': {problem}")


def _turns_problem(messages: list, field: str, explicit_prompt: bool) -> str | None:
    """Roles that a chat template would render wrongly: unknown roles, a response that is not the assistant's, a
    prompt that ends with the assistant (nothing left to answer), a system message after the first."""
    problem = _message_roles_problem(messages, field)
    if problem is not None:
        return problem
    last = messages[-1]["role"]
    if field == "prompt":
        if last == "assistant":
            return "the prompt ends with an 'assistant' message: the response must answer a user turn"
        return None
    if last != "assistant":
        return f"the response must end with an 'assistant' message, its last is {last!r}"
    if explicit_prompt:
        other = next((m["role"] for m in messages if m["role"] not in ("assistant", "tool")), None)
        if other is not None:
            return f"holds a {other!r} message: with a separate prompt, a response holds the assistant's turns only"
    return None


def _message_roles_problem(messages: list, field: str) -> str | None:
    """The first message with an unknown role, a late system message, or (in a response) an empty assistant turn."""
    for number, message in enumerate(messages, 1):
        role = message["role"]
        if role not in ROLES:
            return f"message {number} has role {role!r}, not one of {', '.join(ROLES)}"
        if role in ("system", "developer") and number > 1:
            return f"message {number} is a {role!r} message after the first"
        if field != "prompt" and role == "assistant" and not (message.get("content") or "").strip():
            if message.get("tool_calls"):
                continue  # a tool call: the call is the turn's content
            return f"message {number} (the assistant's) has only whitespace"
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
        for key in ("role", "content") if not message.get("tool_calls") else ("role",):
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
