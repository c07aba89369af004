"""``attribution_target="max_logit_before_eos"``: Eq. 5 one position earlier, so the EOS gets no attribution."""

from __future__ import annotations

import pytest
import torch

from tests.tiny import make_tokenizer
from tests.training.helpers import one_sgd_step, varied_pairs
from tidpo.importance import TARGETS
from tidpo.importance.attribution import last_token_index
from tidpo.importance.target import TargetInputs
from tidpo.importance.targets.max_logit_before_eos import without_last_token


def test_the_target_is_the_largest_logit_before_each_rows_last_token():
    """Row 0 has 3 real tokens (last at 2), row 1 has 2 (last at 1): the target reads positions 1 and 0.
    Row 0, position 1: logits [0.5, 2.0] -> 2.0; row 1, position 0: [-1.0, -3.0] -> -1.0; sum 1.0."""
    logits = torch.tensor(
        [[[9.0, 0.0], [0.5, 2.0], [7.0, 8.0]], [[-1.0, -3.0], [6.0, 6.0], [0.0, 0.0]]], requires_grad=True
    )
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    rows = torch.arange(2)
    x = TargetInputs(mask, mask, lambda m: logits[rows, last_token_index(m)])
    assert TARGETS["max_logit_before_eos"].scalar(x).item() == pytest.approx(1.0)
    assert torch.equal(without_last_token(mask), torch.tensor([[1, 1, 0], [1, 0, 0]]))


def test_training_gives_the_eos_no_weight_from_the_attribution(tmp_path):
    """λ = 1 on whole rows: each response's EOS (its last token) gets attribution 0, hence weight 0; fused and
    separate routes agree."""
    tokenizer = make_tokenizer()
    common = {"attribution_target": "max_logit_before_eos", "importance_mix": 1.0, "share_prompt": False}
    fused, _ = one_sgd_step(tokenizer, tmp_path / "fused", data=varied_pairs(4), **common)
    separate, _ = one_sgd_step(tokenizer, tmp_path / "sep", data=varied_pairs(4), attribution="separate", **common)
    for key in ("loss", "weights/max", "rewards/margins"):
        assert fused.state.log_history[0][key] == pytest.approx(separate.state.log_history[0][key], abs=1e-5), key
    assert fused.state.log_history[0]["weights/min"] == 0.0  # the EOS


def test_shared_prompt_falls_back_to_whole_rows(tmp_path):
    trainer, _ = one_sgd_step(make_tokenizer(), tmp_path, attribution_target="max_logit_before_eos", max_steps=1)
    assert trainer.routes.layout == "whole rows"
