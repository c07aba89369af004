"""Per-token log-probs and KL in the token frame, against naive loops (docs/method.md §2–3)."""

import pytest
import torch
from torch.testing import assert_close

from tidpo.ops import masked_sum, per_token_kl, per_token_logps


def test_per_token_logps_matches_naive_loop():
    """``out[b, i] = log_softmax(logits[b, i - 1])[ids[b, i]]`` for i ≥ 1, computed one entry at a time."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 7, generator=g)
    ids = torch.randint(0, 7, (2, 5), generator=g)
    expected = torch.zeros(2, 5)
    for b in range(2):
        for i in range(1, 5):
            expected[b, i] = torch.log_softmax(logits[b, i - 1], dim=-1)[ids[b, i]]
    assert_close(per_token_logps(logits, ids), expected)


def test_per_token_logps_entry_zero_is_zero():
    """Token 0 has no prediction: its entry is exactly 0 whatever the logits."""
    logits = torch.randn(3, 4, 6) * 10
    ids = torch.randint(0, 6, (3, 4))
    assert torch.equal(per_token_logps(logits, ids)[:, 0], torch.zeros(3))


@pytest.mark.parametrize("ids_shape", [(2, 4), (1, 5), (2, 5, 1)])
def test_per_token_logps_shape_mismatch_raises(ids_shape):
    """logits (2, 5, 7) need input_ids (2, 5); anything else is a shape error, not a silent broadcast."""
    with pytest.raises(ValueError, match="disagree"):
        per_token_logps(torch.randn(2, 5, 7), torch.zeros(ids_shape, dtype=torch.long))


def test_per_token_kl_matches_explicit_sums():
    """``KL_i = Σ_v p_v (log p_v − log q_v)``, p = softmax(ref[i−1]), q = softmax(policy[i−1]);
    log p = x − log Σ exp x written out, the vocabulary sum as a Python loop."""
    g = torch.Generator().manual_seed(1)
    ref, pol = torch.randn(2, 5, 7, generator=g), torch.randn(2, 5, 7, generator=g)
    expected = torch.zeros(2, 5)
    for b in range(2):
        for i in range(1, 5):
            log_p = ref[b, i - 1] - ref[b, i - 1].exp().sum().log()
            log_q = pol[b, i - 1] - pol[b, i - 1].exp().sum().log()
            expected[b, i] = sum(log_p[v].exp() * (log_p[v] - log_q[v]) for v in range(7))
    assert_close(per_token_kl(ref, pol), expected)


def test_per_token_kl_zero_for_equal_logits_and_nonnegative_otherwise():
    """KL(p ‖ p) = 0 at every position; for different logits Gibbs' inequality gives KL ≥ 0 (> 0 here)."""
    g = torch.Generator().manual_seed(2)
    ref, pol = torch.randn(3, 6, 9, generator=g), torch.randn(3, 6, 9, generator=g)
    assert_close(per_token_kl(ref, ref.clone()), torch.zeros(3, 6))
    kl = per_token_kl(ref, pol)
    assert (kl[:, 1:] > 0).all() and torch.equal(kl[:, 0], torch.zeros(3))


def test_per_token_kl_shape_mismatch_raises():
    """ref (2, 5, 7) vs policy (2, 5, 8) is a user error."""
    with pytest.raises(ValueError):
        per_token_kl(torch.randn(2, 5, 7), torch.randn(2, 5, 8))


def test_masked_sum_hand_example():
    """[1, 2, 3]·[0, 1, 1] = 5; [4, 5, 6]·[1, 0, 1] = 10."""
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[0, 1, 1], [1, 0, 1]])
    assert_close(masked_sum(values, mask), torch.tensor([5.0, 10.0]))


def test_per_token_kl_ignores_tokens_with_zero_reference_probability():
    """A vocabulary entry masked to -inf in both models contributes 0, not NaN (0 · (−inf − (−inf)))."""
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 4)
    logits[..., 3] = float("-inf")
    torch.testing.assert_close(per_token_kl(logits, logits), torch.zeros(1, 3))
