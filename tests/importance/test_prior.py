"""Gaussian positional prior (Eq. 7): hand values, symmetry, normalisation, placement, empty span."""

import math

import torch
from torch.testing import assert_close

from tidpo.importance import gaussian_prior


def test_prior_three_tokens_hand_values():
    """T = 3, sigma_div 4: σ = max(3/4, 1) = 1, μ = 1 → [e^-½, 1, e^-½] / (1 + 2e^-½)."""
    e = math.exp(-0.5)
    expected = torch.tensor([[e, 1.0, e]]) / (1 + 2 * e)
    assert_close(gaussian_prior(torch.ones(1, 3), sigma_div=4.0), expected)


def test_prior_eight_tokens_hand_values():
    """T = 8, sigma_div 4: σ = 2, μ = 3.5, t − μ = ±0.5, ±1.5, ±2.5, ±3.5 → exp(-(t−μ)²/8)
    = exp(-0.03125), exp(-0.28125), exp(-0.78125), exp(-1.53125), mirrored, normalised to sum 1."""
    half = [math.exp(-1.53125), math.exp(-0.78125), math.exp(-0.28125), math.exp(-0.03125)]
    raw = torch.tensor([half + half[::-1]])
    assert_close(gaussian_prior(torch.ones(1, 8), sigma_div=4.0), raw / raw.sum())


def test_prior_symmetric_and_sums_to_one():
    """For every span length T the prior is a palindrome about μ = (T − 1)/2 and sums to 1."""
    for length in range(1, 12):
        for div in (4.0, 8.0):
            p = gaussian_prior(torch.ones(1, length), sigma_div=div)[0]
            assert_close(p, p.flip(0))
            assert_close(p.sum(), torch.tensor(1.0))


def test_prior_at_offset_is_shifted_and_zero_off_span():
    """Prompt of 2 then a 3-token span then 1 pad: the same three values at positions 2..4, exactly 0 elsewhere."""
    mask = torch.tensor([[0, 0, 1, 1, 1, 0]])
    p = gaussian_prior(mask, sigma_div=4.0)
    assert_close(p[:, 2:5], gaussian_prior(torch.ones(1, 3), sigma_div=4.0))
    assert torch.equal(p[0, [0, 1, 5]], torch.zeros(3))


def test_prior_batch_rows_are_independent():
    """Row 0 spans 3 tokens, row 1 spans 8: each row equals its own single-row prior."""
    mask = torch.zeros(2, 8)
    mask[0, 5:] = 1
    mask[1] = 1
    p = gaussian_prior(mask, sigma_div=4.0)
    assert_close(p[0, 5:], gaussian_prior(torch.ones(1, 3))[0])
    assert_close(p[1], gaussian_prior(torch.ones(1, 8))[0])


def test_prior_empty_span_gives_zeros_not_nan():
    """A row without span tokens: 0 / max(0, tiny) = 0 everywhere, no NaN."""
    p = gaussian_prior(torch.tensor([[0, 0, 0], [0, 1, 1]]))
    assert torch.equal(p[0], torch.zeros(3))
    assert torch.isfinite(p).all()
