"""The anchor sampler checks the logits itself: scores that make no distribution end the draw and are reported as
``anchor_logits`` (torch's sampler never raises mid-step), on both decode routes; finite draws are untouched."""

from __future__ import annotations

import math

import pytest
import torch

from tests.tiny import make_model
from tests.training.helpers import config, sentiment_pairs
from tidpo import TIDPOTrainer
from tidpo.training.anchors import FiniteLogitsCheck
from tidpo.training.nonfinite import NonFiniteError


def test_check_forces_eos_only_on_rows_without_a_distribution():
    """Row 0 finite, row 1 a NaN, row 2 a +Inf, row 3 all -Inf (EOS = 1): rows 1-3 become [-inf, 0, -inf]."""
    scores = torch.tensor(
        [[0.5, -1.0, 2.0], [0.0, math.nan, 1.0], [math.inf, 0.0, 0.0], [-math.inf, -math.inf, -math.inf]]
    )
    check = FiniteLogitsCheck(eos_token_id=1)
    finite_row = scores[0].clone()
    out = check(torch.zeros(4, 0, dtype=torch.long), scores)
    torch.testing.assert_close(out[0], finite_row)
    eos_only = torch.tensor([-math.inf, 0.0, -math.inf])
    for row in (1, 2, 3):
        torch.testing.assert_close(out[row], eos_only)
    assert check.failed()


def test_check_passes_finite_scores_and_masked_tokens():
    """-Inf on some tokens is top-k's own masking, not a failure."""
    scores = torch.tensor([[0.5, -math.inf, 2.0]])
    check = FiniteLogitsCheck(eos_token_id=0)
    assert torch.equal(check(torch.zeros(1, 0, dtype=torch.long), scores.clone()), scores)
    assert not check.failed()


@pytest.mark.parametrize("share_prompt", [True, False], ids=["own decode loop", "generate"])
def test_nan_logits_in_anchor_sampling_are_named(tokenizer, tmp_path, share_prompt):
    args = config(tmp_path, max_steps=1, anchor_max_new_tokens=4, share_prompt=share_prompt)
    trainer = TIDPOTrainer(
        model=make_model(tokenizer, seed=1),
        ref_model=make_model(tokenizer, seed=0),
        args=args,
        train_dataset=sentiment_pairs(4),
        processing_class=tokenizer,
    )
    with torch.no_grad():
        trainer.model.model.norm.weight[0] = math.nan
    with pytest.raises(NonFiniteError, match=r"anchor_logits.*Nothing was applied"):
        trainer.train()
