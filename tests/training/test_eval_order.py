"""Evaluation longest first (``eval_group_by_length``): less padding, the same metrics; pairs handed to
``trainer.evaluate`` are prepared as the constructor's are."""

from __future__ import annotations

import pytest
from datasets import Dataset

from tests.tiny import make_model
from tests.training.helpers import config, varied_pairs
from tidpo import TIDPOTrainer
from tidpo.data.sampling import LongestFirstSampler, pair_lengths


def test_pair_lengths_and_order_by_hand():
    data = Dataset.from_dict({
        "prompt_ids": [[1, 2], [1], [1, 2, 3, 4], [7]],
        "chosen_ids": [[5], [5, 6, 7], [5], [8]],
        "rejected_ids": [[6, 6, 6], [5], [5, 5], [9]],
    })  # fmt: skip
    # prompt + the longer response: 2 + 3, 1 + 3, 4 + 2, 1 + 1
    assert pair_lengths(data, None) == [5, 4, 6, 2]
    assert pair_lengths(data, 5) == [5, 4, 5, 2]  # cut at max_length, as the collator cuts the rows
    assert list(LongestFirstSampler([5, 4, 5, 2])) == [0, 2, 1, 3]  # ties keep dataset order
    assert pair_lengths(data.select([3, 2]), None) == [2, 6]  # follows a selection's indices


def _trainer(tokenizer, tmp_path, group: bool, data):
    return TIDPOTrainer(
        model=make_model(tokenizer, seed=1), ref_model=make_model(tokenizer, seed=0),
        args=config(tmp_path, per_device_eval_batch_size=2, eval_group_by_length=group, baseline="tdpo2"),
        train_dataset=data, eval_dataset=data, processing_class=tokenizer,
    )  # fmt: skip


def test_longest_first_pads_less_and_gives_the_same_metrics(tokenizer, tmp_path):
    data = varied_pairs(10)
    before, after = (_trainer(tokenizer, tmp_path / str(g), g, data) for g in (False, True))
    padded = {
        name: sum(batch["attention_mask"].numel() for batch in trainer.get_eval_dataloader())
        for name, trainer in (("before", before), ("after", after))
    }
    real = sum(int(batch["attention_mask"].sum()) for batch in before.get_eval_dataloader())
    assert real == sum(int(batch["attention_mask"].sum()) for batch in after.get_eval_dataloader())
    assert padded["after"] < padded["before"], padded
    m_before, m_after = before.evaluate(), after.evaluate()
    for key in (
        "eval_loss",
        "eval_rewards/accuracies",
        "eval_rewards/margins",
        "eval_logps/chosen",
        "eval_kl/rejected",
    ):
        assert m_after[key] == pytest.approx(m_before[key], rel=1e-5, abs=1e-6), key


def test_evaluate_takes_raw_pairs(tokenizer, tmp_path):
    """``trainer.evaluate(pairs)`` with untokenised pairs tokenises them (it raised a KeyError on prompt_ids)."""
    data = varied_pairs(6)
    trainer = _trainer(tokenizer, tmp_path, True, data)
    whole = trainer.evaluate()
    part = trainer.evaluate(data.select(range(3)))
    again = trainer.evaluate(data)
    assert again["eval_loss"] == pytest.approx(whole["eval_loss"], rel=1e-6)
    assert part["eval_loss"] != pytest.approx(whole["eval_loss"], rel=1e-6)  # it really ran on the three pairs
