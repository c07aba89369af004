"""Streaming preference data (``datasets.IterableDataset``), checked and tokenised row by row as it is read.

The same contract (:mod:`tidpo.data.contract`: the first row sets the format) and the same tokenisation
(:mod:`tidpo.data.pair_tokenization`) as for a ``Dataset``, but lazily: a bad row fails when the training loop
reaches it, naming it (``train dataset (streaming), row N``). What cannot be known before the end is reported when
first met, once: pairs whose prompt alone fills ``max_length`` are dropped (a warning at the first), and a prompt
boundary that moved is warned about at the first such pair. Already tokenised rows (``prompt_ids``,
``chosen_ids``, ``rejected_ids``) pass as they are.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from tidpo.data.contract import RowContract
from tidpo.data.errors import refuse_image_columns
from tidpo.data.pair_tokenization import check_eos, tokenize_pair

if TYPE_CHECKING:
    from datasets import IterableDataset
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger("tidpo.data")
_IDS = ("prompt_ids", "chosen_ids", "rejected_ids")
_FIELDS = ("prompt", "chosen", "rejected")


class _RowTokenizer:
    """Checks and tokenises rows as they stream past (``IterableDataset.map`` with indices); warns once each."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, name: str) -> None:
        self.tokenizer, self.name = tokenizer, name
        self.contract = RowContract(f"{name} dataset (streaming)")
        self.warned_boundary = False

    def __call__(self, row: dict[str, Any], index: int) -> dict[str, Any]:
        if index == 0:  # the columns of a stream whose features were not declared are known at its first row
            refuse_image_columns(row, f"{self.name} dataset (streaming), row 1")
        if all(column in row for column in _IDS):
            return {}
        self.contract.check(f"row {index + 1}", {k: row[k] for k in _FIELDS if row.get(k) is not None})
        if self.contract.identical == [f"row {index + 1}"]:
            self.contract.warn_identical()  # streaming: at the first such pair, as the count is not known ahead
        pair = tokenize_pair(row, self.tokenizer, where=f"{self.name} dataset (streaming), row {index + 1}")
        if pair.prompt_tail and not self.warned_boundary:
            self.warned_boundary = True
            logger.warning(
                "%s dataset (streaming), row %d: the tokenised prompt is not a prefix of the tokenised "
                "prompt+completion; the completion starts where they diverge (further such rows are not reported)",
                self.name,
                index + 1,
            )
        return {"prompt_ids": pair.prompt_ids, "chosen_ids": pair.chosen_ids, "rejected_ids": pair.rejected_ids}


class _PromptFits:
    """Keeps pairs whose prompt alone has fewer than ``max_length`` tokens; warns at the first one dropped."""

    def __init__(self, max_length: int | None, name: str) -> None:
        self.max_length, self.name, self.warned = max_length, name, False

    def __call__(self, row: dict[str, Any]) -> bool:
        if self.max_length is None or len(row["prompt_ids"]) < self.max_length:
            return True
        if not self.warned:
            self.warned = True
            logger.warning(
                "%s dataset (streaming): dropping pairs whose prompt alone has >= max_length=%d tokens (no "
                "completion token would survive truncation); streaming data cannot be counted ahead",
                self.name,
                self.max_length,
            )
        return False


def tokenize_streaming(
    dataset: IterableDataset, tokenizer: PreTrainedTokenizerBase, max_length: int | None, name: str
) -> IterableDataset:
    """``dataset`` with ``prompt_ids``, ``chosen_ids`` and ``rejected_ids`` added as rows are read, the pairs
    whose prompt fills ``max_length`` left out (see the module docstring)."""
    check_eos(tokenizer)
    refuse_image_columns(dataset.column_names, f"{name} dataset (streaming)")
    if max_length is not None and max_length < 1:
        raise ValueError(f"max_length must be a positive number of tokens or None, got {max_length}")
    tokenized = dataset.map(_RowTokenizer(tokenizer, name), with_indices=True)
    return tokenized.filter(_PromptFits(max_length, name))
