"""``left_align``: response tokens re-indexed from 0 (the response frame), order kept, differentiable."""

import torch
from torch.testing import assert_close

from tidpo.ops import left_align


def test_left_align_hand_example():
    """Row 0 keeps (2, 3) then pads; row 1 is all real and unchanged."""
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    mask = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1]])
    aligned, aligned_mask = left_align(values, mask)
    assert_close(aligned, torch.tensor([[2.0, 3.0, 0.0, 0.0], [5.0, 6.0, 7.0, 8.0]]))
    assert torch.equal(aligned_mask, torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool))


def test_left_align_width_is_longest_span():
    """Masks [0,1,1,0] and [0,0,0,1] → width T = 2: [[2, 3], [8, 0]]."""
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    mask = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 1]], dtype=torch.bool)
    aligned, aligned_mask = left_align(values, mask)
    assert_close(aligned, torch.tensor([[2.0, 3.0], [8.0, 0.0]]))
    assert torch.equal(aligned_mask, torch.tensor([[True, True], [True, False]]))


def test_left_align_gradient_reaches_masked_entries_only():
    """loss = Σ aligned · c with c = [[1,2,3,4],[5,6,7,8]]: row 0's entries 1, 2 land in slots 0, 1 → grad
    [0, 1, 2, 0]; row 1 is the identity → grad [5, 6, 7, 8]. Unmasked entries get exactly 0."""
    values = torch.randn(2, 4, requires_grad=True)
    mask = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1]])
    coef = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    aligned, _ = left_align(values, mask)
    (aligned * coef).sum().backward()
    assert_close(values.grad, torch.tensor([[0.0, 1.0, 2.0, 0.0], [5.0, 6.0, 7.0, 8.0]]))
