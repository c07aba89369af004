"""Per-token weights from the data: the ``chosen_weights`` / ``rejected_weights`` columns (``importance="columns"``
and ``"columns_raw"``, docs/method.md §1).

**The column rule.** ``chosen_weights`` holds one non-negative finite number per token of the chosen response *as
tidpo tokenises it* (:mod:`tidpo.data.tokenization`), without the final EOS; the same for ``rejected_weights``
and the rejected response. So ``len(row["chosen_weights"]) == len(chosen_ids) - 1``, where ``chosen_ids`` is
what :func:`tidpo.data.tokenize_preference_row` returns for the row, and entry ``i`` belongs to
``chosen_ids[i]``:

- the response's tokens are those after the prompt, for standard text (``tokenizer(prompt + response)``) and for
  conversational rows (the chat template's rendering of the assistant turn(s), with the template's own tokens in
  them, e.g. a turn's ``<|im_start|> assistant``-style header in a multi-turn response); with an implicit prompt,
  those after the shared start; where the tokenised prompt is not a prefix of prompt + response, from where the two
  diverge (that boundary token counts as a response token);
- every tidpo response ends with exactly one EOS, and it never has a weight, whether tidpo appended it or the
  response already ended with it (standard text ending in the EOS string, or a chat template closing the turn
  with it: that EOS, and the whitespace a template writes after it, are not counted). An EOS *inside* the
  response (an earlier turn's end) is an ordinary response token and has a weight;
- the final EOS gets the value 0 (raw score 0 for ``columns``, weight 0 for ``columns_raw``);
- ``max_length`` truncation cuts the weights with their tokens: the collator keeps the first ``max_length``
  tokens of prompt + response, and a kept token keeps its weight.

To get the count for a row: ``len(tokenize_preference_row(row, tokenizer)["chosen_ids"]) - 1``.

**Checks** (at tokenisation, each a :class:`~tidpo.data.PreferenceDataError` naming the dataset, the row (1-based,
as tokenisation names it), the field and what was found): a missing column; a value that is not a list; an entry
that is not a number (``bool`` included), NaN, ±Inf or negative; a length other than the row's number of response
tokens (both numbers in the message). A row whose kept weights (after ``max_length``) are all 0 is an error unless
the caller allows it (``columns`` with ``λ < 1``, where the Gaussian prior then gives the row its weights: the
``ΣI = 0`` guard of Eq. 8). Columns the estimator does not use are neither checked nor batched.

The checked values are stored aligned with the tokenised responses, one per id (final EOS 0), as
``chosen_token_weights`` / ``rejected_token_weights``; :class:`~tidpo.data.PreferenceCollator` pads them into
``batch["token_weights"]``, ``(2B, L)`` in the token frame of ``completion_mask`` (0 on prompt and padding).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from datasets import Dataset

from tidpo.data.errors import PreferenceDataError

WEIGHT_COLUMNS = ("chosen_weights", "rejected_weights")
TOKEN_WEIGHT_COLUMNS = ("chosen_token_weights", "rejected_token_weights")
_RESPONSE_IDS = {"chosen_weights": "chosen_ids", "rejected_weights": "rejected_ids"}
_TOKEN_COLUMN = dict(zip(WEIGHT_COLUMNS, TOKEN_WEIGHT_COLUMNS, strict=True))
_RULE = "the response's tokens as tidpo tokenises them, without the final EOS tidpo ends it with"


def check_weight_columns_present(column_names: Sequence[str], name: str = "train") -> None:
    """Raises :class:`PreferenceDataError` unless both weight columns are there."""
    missing = [column for column in WEIGHT_COLUMNS if column not in column_names]
    if missing:
        raise PreferenceDataError(
            f"{name} dataset: missing column(s) {missing}; importance='columns' / 'columns_raw' reads chosen_weights "
            f"and rejected_weights, one non-negative number per response token ({_RULE}); the columns are "
            f"{list(column_names)}"
        )


def response_token_weights(
    values: Any,
    response_ids: Sequence[int],
    eos_token_id: int,
    where: str,
    field: str,
    *,
    kept_tokens: int | None = None,
    allow_all_zero: bool = False,
) -> list[float]:
    """One row's weights for one response, checked against its tokenised response.

    Args:
        values: the row's ``chosen_weights`` (or ``rejected_weights``) value.
        response_ids: the response's ids as tidpo tokenised them, ending with the EOS.
        eos_token_id: the tokenizer's EOS id.
        where: how the message names the row, e.g. ``"train dataset, row 3"``.
        field: the column's name, for the message.
        kept_tokens: how many of the response's tokens survive ``max_length`` (None: all of them).
        allow_all_zero: whether kept weights that are all 0 are allowed.

    Returns:
        ``len(response_ids)`` floats: ``values`` then 0 for the final EOS.

    Raises:
        PreferenceDataError: the value breaks the rule or a check (module docstring).
    """
    where = f"{where}, field '{field}'"
    _check_is_list(values, where)
    count = _response_token_count(response_ids, eos_token_id, where)
    _check_entries(values, count, where)
    if not allow_all_zero:
        _check_some_kept_weight(values, count, kept_tokens, where)
    return [float(value) for value in values] + [0.0]


def _check_is_list(values: Any, where: str) -> None:
    """The column's value is a list (or tuple) at all."""
    if not isinstance(values, (list, tuple)):
        found = "nothing (None)" if values is None else f"a {type(values).__name__} ({values!r:.60})"
        raise PreferenceDataError(
            f"{where}: expected a list of non-negative numbers, one per response token ({_RULE}), got {found}"
        )


def _response_token_count(response_ids: Sequence[int], eos_token_id: int, where: str) -> int:
    """The response's tokens without its final EOS; a response that does not end with the EOS is an error."""
    if not response_ids or response_ids[-1] != eos_token_id:
        raise PreferenceDataError(
            f"{where}: the tokenised response {list(response_ids)} does not end with the EOS (id {eos_token_id}); "
            "tokenise the pairs with tidpo.data.tokenize_preference_dataset"
        )
    return len(response_ids) - 1


def _check_entries(values: Sequence[Any], count: int, where: str) -> None:
    """One entry per response token, each a finite, non-negative real number (``bool`` refused)."""
    if len(values) != count:
        raise PreferenceDataError(f"{where}: {len(values)} weights for {count} response tokens ({_RULE})")
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise PreferenceDataError(f"{where}: entry {index} is {value!r} (a {type(value).__name__}), not a number")
        if not math.isfinite(value):
            raise PreferenceDataError(f"{where}: entry {index} is {value}; weights must be finite")
        if value < 0:
            raise PreferenceDataError(f"{where}: entry {index} is {value}; weights must be non-negative")


def _check_some_kept_weight(values: Sequence[float], count: int, kept_tokens: int | None, where: str) -> None:
    """Some weight on the tokens that survive ``max_length`` is not 0 (when any survive)."""
    kept = count if kept_tokens is None else min(count, max(kept_tokens, 0))
    if kept > 0 and not any(values[:kept]):
        cut = "" if kept == count else f" (the first {kept}, which survive max_length)"
        raise PreferenceDataError(
            f"{where}: all {kept} weights of the kept response tokens{cut} are 0, so the response would get no "
            "weight; only importance='columns' with importance_mix < 1 allows that (the Gaussian prior then gives "
            "the row its weights)"
        )


def add_token_weight_columns(
    dataset: Dataset,
    eos_token_id: int,
    *,
    max_length: int | None = None,
    allow_all_zero: bool = False,
    name: str = "train",
) -> Dataset:
    """Checks the weight columns of a tokenised dataset and adds them aligned with the ids.

    Args:
        dataset: rows with ``prompt_ids``, ``chosen_ids``, ``rejected_ids`` (tidpo's tokenisation) and the two
            weight columns.
        eos_token_id: the tokenizer's EOS id (every tokenised response ends with it).
        max_length: the collator's truncation, for the all-zero check (None: none).
        allow_all_zero: allow rows whose kept weights are all 0.
        name: the dataset's name in messages.

    Returns:
        The dataset with ``chosen_token_weights`` and ``rejected_token_weights`` (one float per id, final EOS 0).

    Raises:
        PreferenceDataError: a column is missing or a row breaks the rule (module docstring).
    """
    check_weight_columns_present(dataset.column_names, name)
    return dataset.map(
        _weights_example,
        with_indices=True,
        fn_kwargs=dict(eos_token_id=eos_token_id, max_length=max_length, allow_all_zero=allow_all_zero, name=name),
        desc=f"Checking {name} token weights",
    )


def _weights_example(
    row: dict[str, Any], index: int, eos_token_id: int, max_length: int | None, allow_all_zero: bool, name: str
) -> dict[str, list[float]]:
    """One row's checked weights for both responses (``datasets.map``)."""
    # 0 kept tokens: the pair is dropped (its prompt fills max_length), but its weights are still checked
    kept = None if max_length is None else max(max_length - len(row["prompt_ids"]), 0)
    return {
        _TOKEN_COLUMN[field]: response_token_weights(
            row[field],
            row[_RESPONSE_IDS[field]],
            eos_token_id,
            f"{name} dataset, row {index + 1}",
            field,
            kept_tokens=kept,
            allow_all_zero=allow_all_zero,
        )
        for field in WEIGHT_COLUMNS
    }
