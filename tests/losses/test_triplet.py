"""Triplet loss (Eq. 13) on response-frame log-ratios: overlap-only sums and the identities of docs/method.md."""

import torch
from torch.testing import assert_close

from tidpo.losses import triplet_loss


def _hand_example():
    """Anchor d = [1, 2, 3] (len 3), chosen b = [−1, 4] (len 2), rejected c = [2, 0, 1, 5] (len 4); padded
    entries hold junk (50, 100) that the masks must hide. Tensors have different widths (4, 3, 4)."""
    anchor = torch.tensor([[1.0, 2.0, 3.0, 50.0]], requires_grad=True)
    chosen = torch.tensor([[-1.0, 4.0, 100.0]], requires_grad=True)
    rejected = torch.tensor([[2.0, 0.0, 1.0, 5.0]], requires_grad=True)
    masks = torch.tensor([[1, 1, 1, 0]]), torch.tensor([[1, 1, 0]]), torch.tensor([[1, 1, 1, 1]])
    return anchor, chosen, rejected, masks


def test_triplet_hand_example_unequal_lengths():
    """dist_pos over 2 shared tokens: (1+1)² + (2−4)² = 8; dist_neg over 3: (2−1)² + (0−2)² + (1−3)² = 9;
    margin 1.5 → loss = max(0, 8 − 9 + 1.5) = .5."""
    anchor, chosen, rejected, (m_a, m_w, m_l) = _hand_example()
    out = triplet_loss(anchor, m_a, chosen, m_w, rejected, m_l, margin=1.5)
    assert_close(out.dist_pos, torch.tensor([8.0]))
    assert_close(out.dist_neg, torch.tensor([9.0]))
    assert_close(out.loss, torch.tensor(0.5))


def test_triplet_hand_gradients_flow_through_all_three():
    """Active hinge: ∂L/∂d = 2(d − b) + 2(c − d) on the overlaps = [4+2, −4−4, 0−4, 0] = [6, −8, −4, 0];
    ∂L/∂b = −2(d − b) = [−4, 4, 0]; ∂L/∂c = −2(c − d) = [−2, 4, 4, 0]."""
    anchor, chosen, rejected, (m_a, m_w, m_l) = _hand_example()
    triplet_loss(anchor, m_a, chosen, m_w, rejected, m_l, margin=1.5).loss.backward()
    assert_close(anchor.grad, torch.tensor([[6.0, -8.0, -4.0, 0.0]]))
    assert_close(chosen.grad, torch.tensor([[-4.0, 4.0, 0.0]]))
    assert_close(rejected.grad, torch.tensor([[-2.0, 4.0, 4.0, 0.0]]))


def test_triplet_at_initialisation_is_margin_with_zero_gradient():
    """π_θ = π_ref → all ρ = 0 → both distances 0 → loss = margin, and the gradient is exactly 0 everywhere."""
    anchor, chosen, rejected = (torch.zeros(2, n, requires_grad=True) for n in (3, 5, 4))
    masks = torch.tensor([[1, 1, 1], [1, 1, 0]]), torch.ones(2, 5), torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0]])
    out = triplet_loss(anchor, masks[0], chosen, masks[1], rejected, masks[2], margin=0.1)
    out.loss.backward()
    assert_close(out.loss, torch.tensor(0.1))
    for t in (anchor, chosen, rejected):
        assert torch.equal(t.grad, torch.zeros_like(t))


def test_swapping_chosen_and_rejected_flips_distance_gap():
    """dist_pos − dist_neg = D(a, w) − D(l, a); with w ↔ l it becomes D(a, l) − D(w, a): the exact negative."""
    g = torch.Generator().manual_seed(0)
    a, w, r = torch.randn(3, 5, generator=g), torch.randn(3, 4, generator=g), torch.randn(3, 6, generator=g)
    m_a = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 1, 0]])
    m_w = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    m_r = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    out = triplet_loss(a, m_a, w, m_w, r, m_r, margin=0.1)
    swapped = triplet_loss(a, m_a, r, m_r, w, m_w, margin=0.1)
    assert_close(out.dist_pos - out.dist_neg, -(swapped.dist_pos - swapped.dist_neg))


def test_anchor_equal_to_chosen_gives_zero_positive_distance():
    """d = b token by token → Σ(d − b)² = 0 exactly."""
    a = torch.randn(2, 4)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    out = triplet_loss(a, mask, a.clone(), mask, torch.randn(2, 4), torch.ones(2, 4), margin=0.1)
    assert torch.equal(out.dist_pos, torch.zeros(2))


def test_hinge_is_zero_when_negative_is_far():
    """d = [0, 0], b = [.1, .1], c = [5, 5]: .02 − 50 + .1 < 0 → loss 0 and no gradient."""
    anchor = torch.zeros(1, 2, requires_grad=True)
    chosen = torch.full((1, 2), 0.1, requires_grad=True)
    rejected = torch.full((1, 2), 5.0, requires_grad=True)
    ones = torch.ones(1, 2)
    out = triplet_loss(anchor, ones, chosen, ones, rejected, ones, margin=0.1)
    out.loss.backward()
    assert_close(out.loss, torch.tensor(0.0))
    assert torch.equal(anchor.grad, torch.zeros(1, 2)) and torch.equal(rejected.grad, torch.zeros(1, 2))


def test_loss_is_batch_mean_of_hinges():
    """Row 0: d = [1], b = [3], c = [2] → 4 − 1 + .5 = 3.5; row 1: d = [0], b = [0], c = [3] → 0 − 9 + .5 < 0 → 0.
    Mean = (3.5 + 0) / 2 = 1.75."""
    anchor, chosen, rejected = torch.tensor([[1.0], [0.0]]), torch.tensor([[3.0], [0.0]]), torch.tensor([[2.0], [3.0]])
    ones = torch.ones(2, 1)
    out = triplet_loss(anchor, ones, chosen, ones, rejected, ones, margin=0.5)
    assert_close(out.dist_pos - out.dist_neg, torch.tensor([3.0, -9.0]))
    assert_close(out.loss, torch.tensor(1.75))
