"""Edge cases of a training step: one-token responses, rows of very different lengths in one batch (most of a row
padding), all-zero attributions; each gives a finite loss and the same numbers as the rows alone."""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset

from tests.tiny import make_model
from tests.training.helpers import config
from tidpo import TIDPOTrainer
from tidpo.data import PreferenceCollator, tokenize_preference_dataset


def _trainer(tokenizer, tmp_path, data, **overrides):
    return TIDPOTrainer(
        model=make_model(tokenizer, seed=1), ref_model=make_model(tokenizer, seed=0),
        args=config(tmp_path, anchor_max_new_tokens=3, **overrides), train_dataset=data, processing_class=tokenizer,
    )  # fmt: skip


def test_one_token_responses_train(tokenizer, tmp_path):
    data = Dataset.from_list([{"prompt": "the movie was", "chosen": " good", "rejected": " bad"}] * 4)
    trainer = _trainer(tokenizer, tmp_path, data)
    trainer.train()
    log = trainer.state.log_history[0]
    assert all(math.isfinite(log[k]) for k in ("loss", "rewards/margins", "kl/chosen", "weights/max"))


def test_a_mostly_padding_row_gives_the_numbers_it_gives_alone(tokenizer, tmp_path):
    long = "the movie was very very very good and the story was fine and the actor was great ."
    rows = [{"prompt": "hi", "chosen": " ok .", "rejected": " no ."}, {"prompt": long, "chosen": " good .",
                                                                        "rejected": " bad ."}]  # fmt: skip
    trainer = _trainer(tokenizer, tmp_path, Dataset.from_list(rows), baseline="tdpo2")
    trainer.model.eval()
    data = tokenize_preference_dataset(Dataset.from_list(rows), tokenizer, max_length=64, name="train")
    collate = PreferenceCollator(tokenizer.pad_token_id)
    together = collate([data[0], data[1]])
    assert together["attention_mask"][[0, 2]].float().mean() < 0.5  # the short pair's rows are mostly padding
    with torch.no_grad():
        both = trainer.compute_loss(trainer.model, together, return_outputs=True)[1]["base_losses"]
        alone = [trainer.compute_loss(trainer.model, collate([data[i]]), return_outputs=True)[1]["base_losses"]
                 for i in range(2)]  # fmt: skip
    torch.testing.assert_close(both, torch.cat(alone), atol=1e-5, rtol=1e-5)


def test_all_zero_attributions_fall_back_to_the_prior(tokenizer, tmp_path):
    """A custom estimator that scores every token 0: the weights are the Gaussian prior's, finite."""

    def zeros(input_ids, attention_mask, completion_mask):
        return torch.zeros(input_ids.shape, dtype=torch.float32)

    data = Dataset.from_list([{"prompt": "the movie was", "chosen": " very good .", "rejected": " bad ."}] * 4)
    trainer = TIDPOTrainer(
        model=make_model(tokenizer, seed=1), ref_model=make_model(tokenizer, seed=0),
        args=config(tmp_path, importance="custom", anchor_max_new_tokens=3), train_dataset=data,
        processing_class=tokenizer, importance_fn=zeros,
    )  # fmt: skip
    prior = _trainer(tokenizer, tmp_path / "prior", data, importance="prior")
    trainer.train()
    prior.train()
    for key in ("weights/max", "weights/min", "weights/effective_tokens"):
        assert trainer.state.log_history[0][key] == pytest.approx(prior.state.log_history[0][key], rel=1e-6), key
