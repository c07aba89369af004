"""Total objective (Eq. 14): ``L = mean(L_base) + γ · L_triplet``."""

import pytest
import torch
from torch.testing import assert_close

from tidpo.losses import ti_dpo_objective

BASE = torch.tensor([0.6, 0.8, 1.3])  # mean .9


def test_gamma_zero_is_mean_base_loss_without_triplet():
    """γ = 0, triplet None: loss = base = (.6 + .8 + 1.3)/3 = .9."""
    out = ti_dpo_objective(BASE, None, triplet_weight=0.0)
    assert_close(out.loss, torch.tensor(0.9))
    assert_close(out.base_loss, torch.tensor(0.9))
    assert out.triplet_loss is None


def test_gamma_zero_ignores_a_given_triplet():
    """γ = 0 with a triplet of 5: the loss is still .9."""
    assert_close(ti_dpo_objective(BASE, torch.tensor(5.0), triplet_weight=0.0).loss, torch.tensor(0.9))


def test_gamma_adds_weighted_triplet():
    """γ = .1, triplet = 2: loss = .9 + .1·2 = 1.1; the parts are reported unchanged."""
    out = ti_dpo_objective(BASE, torch.tensor(2.0), triplet_weight=0.1)
    assert_close(out.loss, torch.tensor(1.1))
    assert_close(out.base_loss, torch.tensor(0.9))
    assert_close(out.triplet_loss, torch.tensor(2.0))


def test_gamma_positive_without_triplet_raises():
    """γ > 0 and no triplet loss is a configuration error, never a silent γ = 0."""
    with pytest.raises(ValueError, match="triplet"):
        ti_dpo_objective(BASE, None, triplet_weight=0.1)
