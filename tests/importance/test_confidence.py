"""``importance="confidence"``: Eq. 8 with the response tokens less likely than the response's mean token
probability as the scores, read from the policy's per-token log-probs."""

from __future__ import annotations

import math

import pytest
import torch

from tests.tiny import make_tokenizer
from tests.training.helpers import one_sgd_step, varied_pairs
from tidpo.importance import ESTIMATORS, needs_attribution, token_weights


def _logps(*probs):
    return torch.tensor([[math.log(p) for p in probs]])


def test_the_least_likely_tokens_take_the_weight():
    """Row: prompt token, then response tokens with π = 0.5, 0.1, 0.6 (mean 0.4). Only 0.1 < 0.4: I = [0, 0, 1, 0].
    With λ = 1, W = I / ΣI, and mean-normalised over the 3 response tokens w = 3·W = [0, 0, 3, 0]."""
    completion = torch.tensor([[0, 1, 1, 1]])
    logps = torch.cat([torch.zeros(1, 1), _logps(0.5, 0.1, 0.6)], dim=1) * completion
    w = token_weights("confidence", completion, policy_logps=logps, mix=1.0)
    torch.testing.assert_close(w, torch.tensor([[0.0, 0.0, 3.0, 0.0]]))


def test_lambda_mixes_the_prior_and_an_even_row_keeps_the_prior():
    """π = 0.2, 0.2: no token is below the mean, ΣI = 0, so the row falls back to the prior; with λ = 0.5 the row
    of test 1 is half [0, 1, 0] and half the prior (its mean-1 weights)."""
    completion = torch.tensor([[1, 1]])
    even = token_weights("confidence", completion, policy_logps=_logps(0.2, 0.2), mix=1.0)
    prior = token_weights("prior", completion)
    torch.testing.assert_close(even, prior)
    completion = torch.tensor([[1, 1, 1]])
    mixed = token_weights("confidence", completion, policy_logps=_logps(0.5, 0.1, 0.6), mix=0.5)
    prior = token_weights("prior", completion)
    torch.testing.assert_close(mixed, 0.5 * torch.tensor([[0.0, 3.0, 0.0]]) + 0.5 * prior)


def test_it_reads_log_probs_not_the_attribution():
    assert not needs_attribution("confidence", 0.7)
    assert "policy_logps" in ESTIMATORS["confidence"].needs
    with pytest.raises(ValueError, match="needs policy_logps"):
        token_weights("confidence", torch.ones(1, 2))


def test_a_training_step_weights_by_confidence(tmp_path):
    trainer, _ = one_sgd_step(make_tokenizer(), tmp_path, data=varied_pairs(4), importance="confidence")
    assert trainer.routes.attribution == "none"
    log = trainer.state.log_history[0]
    assert math.isfinite(log["loss"]) and log["weights/max"] > 1.0
