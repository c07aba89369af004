"""Tokenising a checked preference dataset: ``prompt_ids``, ``chosen_ids`` and ``rejected_ids`` (TRL's layout).

Each pair is tokenised by :func:`~tidpo.data.pair_tokenization.tokenize_pair` (the rules, and where tidpo deviates
from TRL, are in :mod:`tidpo.data.pair_tokenization`). Here the whole dataset is: its columns are checked first
(image columns refused, unused ones named, conversational rows need a chat template), pairs whose tokenised
prompt is not a prefix of prompt+completion are counted and reported once, and pairs whose prompt alone fills
``max_length`` are dropped and counted (:class:`TokenizationReport`).

Per-token weights from the data (``chosen_weights`` / ``rejected_weights``, for ``importance="columns"`` and
``"columns_raw"``): with ``weight_columns=True`` they are checked against the tokenised responses (one number per
response token without the final EOS) and stored aligned with the ids; the rule is in
:mod:`tidpo.data.token_weights`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from datasets import Dataset

from tidpo.data.errors import PreferenceDataError, refuse_image_columns
from tidpo.data.pair_tokenization import (
    TokenizedPair,
    check_eos,
    common_prefix_length,
    tokenize_pair,
    tokenize_preference_row,
)
from tidpo.data.token_weights import add_token_weight_columns, check_weight_columns_present

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "ID_COLUMNS",
    "ROW_COLUMN",
    "TokenizationReport",
    "TokenizedPair",
    "common_prefix_length",
    "tokenize_pair",
    "tokenize_preference_dataset",
    "tokenize_preference_dataset_with_report",
    "tokenize_preference_row",
]

logger = logging.getLogger("tidpo.data")
ROW_COLUMN = "tidpo_row"

ID_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")
_CUT_COLUMN = "_tidpo_prompt_tokens_cut"


@dataclass(frozen=True)
class TokenizationReport:
    """What :func:`tokenize_preference_dataset_with_report` did to a dataset.

    Attributes:
        name: the dataset's name in messages (``"train"``, ``"eval"``).
        num_pairs: pairs tokenised.
        num_boundary_mismatches: pairs whose tokenised prompt is not a prefix of the tokenised prompt+completion.
        num_dropped: pairs dropped because the prompt alone has ``>= max_length`` tokens.
    """

    name: str
    num_pairs: int
    num_boundary_mismatches: int
    num_dropped: int

    @property
    def num_kept(self) -> int:
        return self.num_pairs - self.num_dropped


def tokenize_preference_dataset(
    dataset: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int | None = None,
    name: str = "train",
    *,
    weight_columns: bool = False,
    allow_zero_weights: bool = False,
) -> Dataset:
    """Adds ``prompt_ids``, ``chosen_ids`` and ``rejected_ids`` to every row of a checked preference dataset.

    Boundary mismatches and dropped pairs are each logged once (``tidpo.data`` logger, warning level).
    Truncation itself is the collator's job.

    Args:
        dataset: rows with ``chosen``, ``rejected`` and optionally ``prompt``; other columns are kept.
        tokenizer: a tokenizer with an ``eos_token_id`` (and a chat template, for conversational rows).
        max_length: pairs whose prompt alone has ``>= max_length`` tokens are dropped (with keep-start truncation
            they would keep no completion token); None keeps every pair.
        name: the dataset's name in messages.
        weight_columns: also check the ``chosen_weights`` / ``rejected_weights`` columns against the tokenised
            responses and add them aligned with the ids (``chosen_token_weights``, ``rejected_token_weights``; the
            rule: :mod:`tidpo.data.token_weights`). False: those columns, if any, are kept untouched and unchecked.
        allow_zero_weights: allow rows whose weights are all 0 on the tokens that survive ``max_length``.

    Returns:
        The dataset with the three id columns added (and the two token-weight columns).

    Raises:
        PreferenceDataError: a row cannot be tokenised, or breaks the weight-column rule (the message names it).
        ValueError: ``max_length`` is not positive, or the tokenizer has no EOS.
    """
    return tokenize_preference_dataset_with_report(
        dataset, tokenizer, max_length, name, weight_columns=weight_columns, allow_zero_weights=allow_zero_weights
    )[0]


def tokenize_preference_dataset_with_report(
    dataset: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int | None = None,
    name: str = "train",
    *,
    weight_columns: bool = False,
    allow_zero_weights: bool = False,
) -> tuple[Dataset, TokenizationReport]:
    """Tokenises a checked preference dataset (see :func:`tidpo.data.load_preference_data`), with the counts.

    Takes the arguments of :func:`tokenize_preference_dataset`, and raises what it raises.

    Returns:
        The tokenised dataset, as :func:`tokenize_preference_dataset` returns it, and the report of what was done.
    """
    _check_arguments(dataset, tokenizer, max_length, name, weight_columns)
    tokenized, mismatched = _tokenize_rows(dataset, tokenizer, name)
    if weight_columns:  # before dropping pairs, so that rows keep their numbers in messages
        tokenized = add_token_weight_columns(
            tokenized, tokenizer.eos_token_id, max_length=max_length, allow_all_zero=allow_zero_weights, name=name
        )
    if mismatched:
        _warn_boundary_mismatches(dataset, tokenizer, name, mismatched)
    kept = tokenized if max_length is None else _drop_long_prompts(tokenized, max_length, name)
    report = TokenizationReport(name, len(tokenized), len(mismatched), len(tokenized) - len(kept))
    if report.num_dropped:
        _warn_dropped(report, max_length)
    return kept, report


def _check_arguments(
    dataset: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int | None, name: str, weight_columns: bool
) -> None:
    """What can be refused before the (slow) tokenisation: no EOS, a bad ``max_length``, missing columns."""
    check_eos(tokenizer)
    if max_length is not None and max_length < 1:
        raise ValueError(f"max_length must be a positive number of tokens or None, got {max_length}")
    if weight_columns:
        check_weight_columns_present(dataset.column_names, name)
    _check_columns(dataset, tokenizer, name)


def _tokenize_rows(dataset: Dataset, tokenizer: PreTrainedTokenizerBase, name: str) -> tuple[Dataset, list[int]]:
    """The dataset with the id columns and :data:`ROW_COLUMN` added, and the indices of the rows whose
    tokenised prompt is not a prefix of the tokenised prompt+completion."""
    tokenized = dataset.map(
        _tokenize_example,
        with_indices=True,
        fn_kwargs={"tokenizer": tokenizer, "name": name},
        desc=f"Tokenizing {name} dataset",
    )
    mismatched = [index for index, cut in enumerate(tokenized[_CUT_COLUMN]) if cut]
    return tokenized.remove_columns(_CUT_COLUMN), mismatched


def _drop_long_prompts(tokenized: Dataset, max_length: int, name: str) -> Dataset:
    """The pairs whose prompt alone has fewer than ``max_length`` tokens."""
    return tokenized.filter(
        _prompt_fits,
        input_columns="prompt_ids",
        fn_kwargs={"max_length": max_length},
        desc=f"Dropping {name} pairs whose prompt fills max_length",
    )


def _warn_dropped(report: TokenizationReport, max_length: int | None) -> None:
    """One warning for the pairs :func:`_drop_long_prompts` left out."""
    logger.warning(
        "%s dataset: dropped %d of %d pairs whose prompt alone has >= max_length=%d tokens (no completion token "
        "would survive truncation).",
        report.name,
        report.num_dropped,
        report.num_pairs,
        max_length,
    )


def _tokenize_example(row: dict[str, Any], index: int, tokenizer: PreTrainedTokenizerBase, name: str) -> dict:
    """One row's id columns, its 1-based row number, and how many prompt tokens the boundary cut (``datasets.map``)."""
    pair = tokenize_pair(row, tokenizer, where=f"{name} dataset, row {index + 1}")
    return {
        "prompt_ids": pair.prompt_ids,
        "chosen_ids": pair.chosen_ids,
        "rejected_ids": pair.rejected_ids,
        ROW_COLUMN: index + 1,  # the pair's row in the data given (1-based), for messages about it later
        _CUT_COLUMN: len(pair.prompt_tail),
    }


def _prompt_fits(prompt_ids: list[int], max_length: int) -> bool:
    return len(prompt_ids) < max_length


def _warn_boundary_mismatches(
    dataset: Dataset, tokenizer: PreTrainedTokenizerBase, name: str, mismatched: list[int]
) -> None:
    """One warning for every pair whose prompt boundary moved, with the first one's lost prompt tokens."""
    example = mismatched[0]
    tail = tokenize_pair(dataset[example], tokenizer).prompt_tail
    logger.warning(
        "%s dataset: in %d of %d pairs the tokenised prompt is not a prefix of the tokenised prompt+completion "
        "(tokens merge across the boundary, or the chat template renders the prompt alone differently); their "
        "completion starts where the two diverge, and the end of the prompt is left out. Example: row %d loses %r. "
        "To avoid it, end standard prompts on a token boundary (e.g. put the separating space at the start of the "
        "completion) or use a chat template that renders the prompt the same way in both cases.",
        name,
        len(mismatched),
        len(dataset),
        example + 1,
        tokenizer.decode(tail),
    )


_USED_COLUMNS = ("prompt", "chosen", "rejected", "chosen_weights", "rejected_weights")
_TEMPLATE_COLUMNS = ("tools", "chat_template_kwargs")  # read by the chat template: used by conversational rows
PRIVATE_PREFIX = "_tidpo_"  # columns tidpo itself adds (tidpo explain's row index): not the user's, not warned of


def _check_columns(dataset: Dataset, tokenizer: PreTrainedTokenizerBase, name: str) -> None:
    """Conversational rows need a chat template (and pass ``tools`` and ``chat_template_kwargs`` to it); image
    columns are refused; other unused columns are named in a warning (they are kept in the dataset, and nothing
    reads them)."""
    refuse_image_columns(dataset.column_names, f"{name} dataset")
    chat = len(dataset) > 0 and isinstance(dataset[0]["chosen"], list)
    used = _USED_COLUMNS + (_TEMPLATE_COLUMNS if chat else ())
    unused = [c for c in dataset.column_names if c not in used and not c.startswith(PRIVATE_PREFIX)]
    if unused:
        note = " ('tools' is not passed to the chat template)" if "tools" in unused else ""
        logger.warning("%s dataset: column(s) %s are not used in training%s", name, ", ".join(map(repr, unused)), note)
    if chat and getattr(tokenizer, "chat_template", None) is None:
        raise PreferenceDataError(
            f"{name} dataset: the rows are conversational (lists of messages), but the tokenizer has no chat "
            "template: use a chat model's tokenizer, set tokenizer.chat_template, or give the data as plain strings"
        )
