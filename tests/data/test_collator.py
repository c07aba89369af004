"""PreferenceCollator: TRL's (2B, L) layout, keep-start truncation, and the left-padded prompts (B, P)."""

from __future__ import annotations

import pytest
import torch

from tidpo.data import PreferenceCollator

EXAMPLES = [
    {"prompt_ids": [1, 2, 3], "chosen_ids": [4, 5], "rejected_ids": [6]},
    {"prompt_ids": [7, 8], "chosen_ids": [9], "rejected_ids": [10, 11]},
]


def test_chosen_rows_come_first_then_rejected_right_padded():
    batch = PreferenceCollator(pad_token_id=0)(EXAMPLES)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5], [7, 8, 9, 0, 0], [1, 2, 3, 6, 0], [7, 8, 10, 11, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 0]]
    assert batch["completion_mask"].tolist() == [[0, 0, 0, 1, 1], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 1, 1, 0]]


def test_prompts_are_left_padded():
    batch = PreferenceCollator(pad_token_id=0)(EXAMPLES)
    assert batch["prompt_input_ids"].tolist() == [[1, 2, 3], [0, 7, 8]]
    assert batch["prompt_attention_mask"].tolist() == [[1, 1, 1], [0, 1, 1]]


def test_truncation_keeps_the_start_of_each_row():
    batch = PreferenceCollator(pad_token_id=0, max_length=3)(EXAMPLES[1:])
    assert batch["input_ids"].tolist() == [[7, 8, 9], [7, 8, 10]]
    assert batch["completion_mask"].tolist() == [[0, 0, 1], [0, 0, 1]]
    assert batch["prompt_input_ids"].tolist() == [[7, 8]]


def test_pad_to_multiple_of_pads_both_lengths():
    batch = PreferenceCollator(pad_token_id=0, pad_to_multiple_of=4)(EXAMPLES)
    assert batch["input_ids"].shape == (4, 8)
    assert batch["prompt_input_ids"].tolist() == [[0, 1, 2, 3], [0, 0, 7, 8]]


def test_dtypes_are_long():
    batch = PreferenceCollator(pad_token_id=0)(EXAMPLES)
    assert {key: value.dtype for key, value in batch.items()} == dict.fromkeys(batch, torch.long)


def test_reference_logps_pass_through():
    examples = [{**ex, "ref_chosen_logps": -1.5, "ref_rejected_logps": -2.0 - i} for i, ex in enumerate(EXAMPLES)]
    batch = PreferenceCollator(pad_token_id=0)(examples)
    assert batch["ref_chosen_logps"].tolist() == [-1.5, -1.5]
    assert batch["ref_rejected_logps"].tolist() == [-2.0, -3.0]


def test_prompt_filling_max_length_raises():
    with pytest.raises(ValueError, match="keeps no completion token"):
        PreferenceCollator(pad_token_id=0, max_length=3)(EXAMPLES)


def test_empty_batch_raises():
    with pytest.raises(ValueError, match="empty list of examples"):
        PreferenceCollator(pad_token_id=0)([])
