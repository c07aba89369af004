"""Evaluation order: pairs longest first, so consecutive batches hold rows of similar length (less padding, the
same metrics) and the batch most likely to run out of memory comes first (``eval_group_by_length``)."""

from __future__ import annotations

import torch

TOKENIZED_COLUMNS = frozenset({"prompt_ids", "chosen_ids", "rejected_ids"})


def is_tokenized(dataset) -> bool:
    """Whether ``dataset`` already holds token ids (``prompt_ids``, ``chosen_ids``, ``rejected_ids``)."""
    return hasattr(dataset, "column_names") and TOKENIZED_COLUMNS <= set(dataset.column_names)


def pair_lengths(dataset, max_length: int | None) -> list[int]:
    """Tokens of each pair's longer row (prompt + the longer response, cut at ``max_length`` as the collator does)."""
    import pyarrow.compute as pc

    table = dataset.select_columns(sorted(TOKENIZED_COLUMNS)).with_format("arrow")[:]  # list lengths, no copies
    size = {name: pc.list_value_length(table[name]).to_numpy(zero_copy_only=False) for name in TOKENIZED_COLUMNS}
    lengths = size["prompt_ids"] + size["chosen_ids"].clip(min=size["rejected_ids"])
    return (lengths if max_length is None else lengths.clip(max=max_length)).tolist()


class LongestFirstSampler(torch.utils.data.Sampler):
    """Indices by decreasing length (ties in dataset order): consecutive batches hold rows of similar length, and
    the longest batch, the one most likely to run out of memory, comes first."""

    def __init__(self, lengths: list[int]):
        self.order = sorted(range(len(lengths)), key=lambda i: -lengths[i])

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self):
        return iter(self.order)
