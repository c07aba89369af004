"""Batching tokenised preference pairs in TRL's layout, plus the left-padded prompts the anchor sampler needs.

``input_ids``, ``attention_mask`` and ``completion_mask`` are exactly what TRL 1.16's ``DataCollatorForPreference``
returns with ``truncation_mode="keep_start"``: ``(2B, L)``, the B chosen rows (prompt + chosen) first, then the B
rejected rows (prompt + rejected), right padded. ``prompt_input_ids`` / ``prompt_attention_mask`` are ``(B, P)``
and left padded, so that ``generate`` continues every prompt from its last column (docs/method.md §4, the anchor).
Per-token weights from the data (``chosen_token_weights`` / ``rejected_token_weights``, one per response id, see
:mod:`tidpo.data.token_weights`) become ``token_weights``, ``(2B, L)`` float32 in the same frame as
``completion_mask``: truncated with their tokens, 0 on the prompt and the padding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from tidpo.data.token_weights import TOKEN_WEIGHT_COLUMNS

REF_LOGP_KEYS = ("ref_chosen_logps", "ref_rejected_logps")
TRUNCATION_MODES = ("keep_start", "keep_end")
REF_TOKEN_KEYS = ("ref_chosen_token_logps", "ref_rejected_token_logps")  # per response token, from the cache


@dataclass
class PreferenceCollator:
    """Pads tokenised preference pairs into a batch.

    Attributes:
        pad_token_id: the id written into padding positions of ``input_ids`` and ``prompt_input_ids``.
        max_length: each prompt + completion row keeps its first ``max_length`` tokens (keep-start, TRL's
            default); a row left with no completion token raises, so the prompts given to the anchor sampler are
            never cut. None: no truncation.
        pad_to_multiple_of: pad both sequence dimensions (``L`` and ``P``) up to a multiple of this.
        truncation_mode: ``"keep_start"``, or ``"keep_end"``: each row keeps its *last* ``max_length`` tokens, as
            in TRL (the chosen and the rejected row of a pair may then keep different parts of the prompt, so
            such batches are whole rows, never a shared prompt), and the anchors' prompt its last ``max_length``.
    """

    pad_token_id: int
    max_length: int | None = None
    pad_to_multiple_of: int | None = None
    truncation_mode: str = "keep_start"

    def __post_init__(self) -> None:
        for name in ("max_length", "pad_to_multiple_of"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"PreferenceCollator: {name} must be a positive int or None, got {value}")
        if self.truncation_mode not in TRUNCATION_MODES:
            raise ValueError(
                f"PreferenceCollator: truncation_mode must be one of {TRUNCATION_MODES}, got {self.truncation_mode!r}"
            )

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Tensor]:
        """Collates examples holding ``prompt_ids``, ``chosen_ids``, ``rejected_ids`` (and optional ref logps).

        Args:
            examples: B tokenised pairs (lists of ints); ``ref_chosen_logps`` / ``ref_rejected_logps`` floats are
                passed through when the first example has them; ``chosen_token_weights`` /
                ``rejected_token_weights`` (one float per response id) are padded when the first example has them.

        Returns:
            ``input_ids``, ``attention_mask``, ``completion_mask`` (long, ``(2B, L)``), ``prompt_input_ids``,
            ``prompt_attention_mask`` (long, ``(B, P)``), the ref logps (float32, ``(B,)``) when given, and
            ``token_weights`` (float32, ``(2B, L)``, 0 off the kept response tokens) when given.

        Raises:
            ValueError: no examples, an empty prompt, a row that keeps no completion token after truncation, or
                token weights whose count is not the response's.
        """
        prompts = self._prompts(examples)
        rows, completion_masks, weights = self._rows(prompts, examples)
        # Every row keeps a completion token, so every prompt survives truncation whole.
        self._check_completions_survive(completion_masks)
        batch = {
            "input_ids": self._pad(rows, self.pad_token_id, left=False),
            "attention_mask": self._pad([[1] * len(row) for row in rows], 0, left=False),
            "completion_mask": self._pad(completion_masks, 0, left=False),
            "prompt_input_ids": self._pad(self._prompt_cut(prompts), self.pad_token_id, left=True),
            "prompt_attention_mask": self._pad([[1] * len(p) for p in self._prompt_cut(prompts)], 0, left=True),
        }
        batch.update(self._extras(examples, batch["completion_mask"], weights))
        return batch

    @staticmethod
    def _prompts(examples: Sequence[Mapping[str, Any]]) -> list[list[int]]:
        """Each example's ``prompt_ids``; no examples, or an empty prompt, is an error."""
        if not examples:
            raise ValueError("PreferenceCollator: got an empty list of examples")
        prompts = [list(example["prompt_ids"]) for example in examples]
        if any(not prompt for prompt in prompts):
            raise ValueError("PreferenceCollator: an example has empty prompt_ids; the anchor sampler needs a prompt")
        return prompts

    def _rows(
        self, prompts: list[list[int]], examples: Sequence[Mapping[str, Any]]
    ) -> tuple[list[list[int]], list[list[int]], list[list[float]] | None]:
        """The 2B prompt + completion rows (all chosen rows first, then all rejected rows: TRL's order), their
        completion masks and, when the first example has token weights, their weights (0 on the prompt); each cut
        to ``max_length``."""
        weighted = all(key in examples[0] for key in TOKEN_WEIGHT_COLUMNS)
        rows, completion_masks, weights = [], [], []
        for key, weight_key in zip(("chosen_ids", "rejected_ids"), TOKEN_WEIGHT_COLUMNS, strict=True):
            for index, (prompt, example) in enumerate(zip(prompts, examples, strict=True)):
                completion = list(example[key])
                rows.append(prompt + completion)
                completion_masks.append([0] * len(prompt) + [1] * len(completion))
                if weighted:
                    weights.append([0.0] * len(prompt) + self._token_weights(example, weight_key, completion, index))
        return self._truncate(rows), self._truncate(completion_masks), self._truncate(weights) if weighted else None

    def _truncate(self, sequences: list[list]) -> list[list]:
        """Each sequence's first ``max_length`` items (keep-start) or its last (keep-end), or all of them without
        ``max_length``."""
        if self.max_length is None:
            return sequences
        if self.truncation_mode == "keep_end":
            return [sequence[-self.max_length :] for sequence in sequences]
        return [sequence[: self.max_length] for sequence in sequences]

    def _prompt_cut(self, prompts: list[list[int]]) -> list[list[int]]:
        """The anchors' prompts: whole under keep-start (a kept completion token means the prompt fits), their last
        ``max_length`` tokens under keep-end."""
        return self._truncate(prompts) if self.truncation_mode == "keep_end" else prompts

    def _extras(
        self, examples: Sequence[Mapping[str, Any]], completion_mask: Tensor, weights: list[list[float]] | None
    ) -> dict[str, Tensor]:
        """The optional entries: reference log-probs, per-token reference log-probs, token weights and row numbers,
        each when the examples carry it."""
        extras = {}
        for key in REF_LOGP_KEYS:
            if key in examples[0]:
                extras[key] = torch.tensor([float(example[key]) for example in examples], dtype=torch.float32)
        if all(key in examples[0] for key in REF_TOKEN_KEYS):
            extras["ref_token_logps"] = self._ref_token_frame(examples, completion_mask)
        if weights is not None:
            extras["token_weights"] = self._pad(weights, 0.0, left=False, dtype=torch.float32)
        if all("tidpo_row" in example for example in examples):  # the pairs' rows in the data, for messages
            extras["tidpo_row"] = torch.tensor([int(example["tidpo_row"]) for example in examples])
        return extras

    @staticmethod
    def _token_weights(example: Mapping[str, Any], key: str, completion: list[int], index: int) -> list[float]:
        """The example's weights for one response, one per completion token; another count is an error."""
        values = example[key]
        if values is None or len(values) != len(completion):
            found = "no" if values is None else len(values)
            raise ValueError(
                f"PreferenceCollator: pair {index} of the batch has {found} {key} values for its {len(completion)} "
                "response tokens; add them with tidpo.data.tokenize_preference_dataset(..., weight_columns=True)"
            )
        return [float(value) for value in values]

    @staticmethod
    def _ref_token_frame(examples: Sequence[Mapping[str, Any]], completion_mask: Tensor) -> Tensor:
        """Cached per-token reference log-probs at the response tokens of the ``(2B, L)`` rows (0 elsewhere)."""
        frame = torch.zeros(completion_mask.shape, dtype=torch.float32)
        n = len(examples)
        for row in range(2 * n):
            key = REF_TOKEN_KEYS[row // n]
            values = examples[row % n][key]
            where = completion_mask[row].bool()
            if len(values) != int(where.sum()):
                raise ValueError(
                    f"PreferenceCollator: pair {row % n} of the batch has {len(values)} cached {key} values for "
                    f"{int(where.sum())} response tokens; the cache was made with another max_length or tokenizer"
                )
            frame[row, where] = torch.tensor(values, dtype=torch.float32)
        return frame

    def _check_completions_survive(self, completion_masks: list[list[int]]) -> None:
        """Raises unless every row keeps at least one completion token after truncation."""
        if any(not any(mask) for mask in completion_masks):
            raise ValueError(
                f"PreferenceCollator: a row keeps no completion token (its completion is empty, or its prompt fills "
                f"max_length={self.max_length}); drop such pairs first with "
                "tokenize_preference_dataset(..., max_length=max_length)"
            )

    def _pad(
        self, sequences: list[list[int]] | list[list[float]], value: float, left: bool, dtype: torch.dtype = torch.long
    ) -> Tensor:
        """``(N, T)`` tensor of ``dtype``, ``T`` the longest length rounded up to ``pad_to_multiple_of``."""
        length = max(len(sequence) for sequence in sequences)
        if self.pad_to_multiple_of is not None:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        out = torch.full((len(sequences), length), value, dtype=dtype)
        for i, sequence in enumerate(sequences):
            if sequence:
                start = length - len(sequence) if left else 0
                out[i, start : start + len(sequence)] = torch.tensor(sequence, dtype=dtype)
        return out
