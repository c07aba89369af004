"""The chunked LM-head route equals the plain full-logits route (values and gradients), whatever the chunking."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from tests.device import current_device
from tidpo.lm_head import HeadWorkspace, gather_predicting, head_token_stats, to_token_frame
from tidpo.ops import per_token_kl, per_token_logps


def _case(n=7, d=5, v=11, seed=0, dtype=torch.float32):
    """Seeded on the CPU (same numbers on every device), then moved to the tests' device."""
    g, device = torch.Generator().manual_seed(seed), current_device()
    hidden = torch.randn(n, d, generator=g, dtype=dtype).to(device).requires_grad_()
    weight = torch.randn(v, d, generator=g, dtype=dtype).to(device).requires_grad_()
    ref_hidden = torch.randn(n, d, generator=g, dtype=dtype).to(device)
    targets = torch.randint(0, v, (n,), generator=g).to(device)
    return hidden, weight, ref_hidden, targets


def _plain(hidden, weight, ref_hidden, targets):
    """The naive route: full logits, then tidpo.ops on a (1, N+1, V) 'sequence' whose tokens are the targets."""
    logits = (hidden @ weight.T).unsqueeze(0)  # (1, N, V); position i predicts token i + 1
    ref_logits = (ref_hidden @ weight.detach().T).unsqueeze(0)
    pad = torch.zeros(1, 1, logits.shape[-1], dtype=logits.dtype)
    ids = torch.cat([targets.new_zeros(1), targets]).unsqueeze(0)  # (1, N+1)
    logps = per_token_logps(torch.cat([logits, pad], 1), ids)[0, 1:]
    ref_logps = per_token_logps(torch.cat([ref_logits, pad], 1), ids)[0, 1:]
    kl = per_token_kl(torch.cat([ref_logits, pad], 1), torch.cat([logits, pad], 1))[0, 1:]
    return logps, ref_logps, kl


@pytest.mark.parametrize("chunk", [1, 3, 7, 100])
def test_values_equal_the_full_logits_route(chunk):
    hidden, weight, ref_hidden, targets = _case()
    stats = head_token_stats(hidden, weight, targets, ref_hidden, weight.detach(), chunk_size=chunk)
    logps, ref_logps, kl = _plain(hidden, weight, ref_hidden, targets)
    assert_close(stats.logps, logps, atol=1e-6, rtol=1e-5)
    assert_close(stats.ref_logps, ref_logps, atol=1e-6, rtol=1e-5)
    assert_close(stats.kl, kl, atol=1e-6, rtol=1e-5)
    assert (stats.kl >= 0).all()


@pytest.mark.parametrize("chunk", [2, 100])
def test_gradients_equal_the_full_logits_route(chunk):
    """A loss that mixes log-probs and KL with arbitrary coefficients: same ∂/∂hidden and ∂/∂weight."""
    coef = torch.linspace(-1.0, 2.0, 7)
    hidden, weight, ref_hidden, targets = _case()
    stats = head_token_stats(hidden, weight, targets, ref_hidden, weight.detach(), chunk_size=chunk)
    (coef * stats.logps + coef.flip(0) * stats.kl).sum().backward()
    fast = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    logps, _, kl = _plain(hidden, weight, ref_hidden, targets)
    (coef * logps + coef.flip(0) * kl).sum().backward()
    assert_close(fast[0], hidden.grad, atol=1e-5, rtol=1e-5)
    assert_close(fast[1], weight.grad, atol=1e-5, rtol=1e-5)


def test_gradcheck_in_float64():
    hidden, weight, ref_hidden, targets = _case(n=4, d=3, v=6, dtype=torch.float64)
    ref_weight = weight.detach().clone()  # gradcheck perturbs weight in place; the reference must stay put

    def fn(h, w):
        stats = head_token_stats(h, w, targets, ref_hidden, ref_weight, chunk_size=3)
        return stats.logps, stats.kl

    assert torch.autograd.gradcheck(fn, (hidden, weight))


def test_kl_is_zero_and_its_gradient_vanishes_when_policy_equals_reference():
    hidden, weight, _, targets = _case()
    stats = head_token_stats(hidden, weight, targets, hidden.detach(), weight.detach())
    assert_close(stats.kl, torch.zeros(7), atol=1e-6, rtol=0)
    assert_close(stats.ref_logps, stats.logps.detach())
    stats.kl.sum().backward()
    assert_close(hidden.grad, torch.zeros_like(hidden), atol=1e-6, rtol=0)


def test_without_reference_only_logps_and_the_hand_computed_value():
    """D = 1, V = 2, W = [[1], [0]], h = [[ln 3]]: logits (ln 3, 0), so log p[0] = ln(3/4), log p[1] = ln(1/4)."""
    hidden = torch.tensor([[torch.log(torch.tensor(3.0))]] * 2)
    weight = torch.tensor([[1.0], [0.0]])
    stats = head_token_stats(hidden, weight, torch.tensor([0, 1]))
    assert stats.ref_logps is None and stats.kl is None
    assert_close(stats.logps, torch.log(torch.tensor([0.75, 0.25])))


def test_frame_round_trip_places_values_at_response_tokens():
    """Row 0: tokens 2-3 are response; row 1: tokens 1-3. Hidden i predicts token i + 1."""
    mask = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
    hidden = torch.arange(2 * 4, dtype=torch.float32).view(2, 4, 1)  # value = 4 b + i
    rows = gather_predicting(hidden, mask)
    assert rows.squeeze(-1).tolist() == [1.0, 2.0, 4.0, 5.0, 6.0]
    frame = to_token_frame(rows.squeeze(-1), mask)
    assert frame.tolist() == [[0.0, 0.0, 1.0, 2.0], [0.0, 4.0, 5.0, 6.0]]


def test_shape_errors_name_the_shapes():
    hidden, weight, _, targets = _case()
    with pytest.raises(ValueError, match=r"\(7, 5\)"):
        head_token_stats(hidden, weight[:, :4], targets)
    with pytest.raises(ValueError, match="together"):
        head_token_stats(hidden, weight, targets, ref_hidden=hidden.detach())


def test_a_vocabulary_entry_at_minus_infinity_counts_zero_in_the_kl():
    """A -inf reference logit (q = 0) turns its row's dot product NaN; that row is redone with the mask and
    equals the plain route."""
    hidden, weight, ref_hidden, targets = _case(n=6, v=9)
    ref_weight = weight.detach().clone()
    ref_hidden = ref_hidden.clone()
    ref_hidden[2] = 0.0
    ref_weight[4] = 0.0
    ref_weight[4, 0] = float("-inf")  # row 2 stays finite (0 · -inf is NaN in a matmul, so keep h[2] = 1 there)
    ref_hidden[2, 0] = 1.0
    stats = head_token_stats(hidden, weight, targets, ref_hidden, ref_weight, chunk_size=4)
    logits = hidden @ weight.T
    ref_logits = ref_hidden @ ref_weight.T
    assert torch.isinf(ref_logits[2, 4]) and torch.isfinite(ref_logits[2]).sum() == 8
    q = ref_logits.log_softmax(-1)
    expected = (q.exp() * torch.where(q.exp() > 0, q - logits.log_softmax(-1), torch.zeros_like(q))).sum(-1)
    assert torch.isfinite(stats.kl[2])
    assert_close(stats.kl[2], expected[2], atol=1e-6, rtol=1e-5)


def test_a_workspace_reuses_its_buffers_and_changes_no_number():
    hidden, weight, ref_hidden, targets = _case()
    coef = torch.linspace(-1.0, 2.0, 7)
    results = {}
    workspace = HeadWorkspace()
    for key, ws in (("fresh", None), ("workspace", workspace), ("again", workspace)):
        hidden.grad = weight.grad = None
        stats = head_token_stats(hidden, weight, targets, ref_hidden, weight.detach(), chunk_size=3, workspace=ws)
        (coef * stats.logps + coef.flip(0) * stats.kl).sum().backward()
        results[key] = (stats.logps.detach(), stats.kl.detach(), hidden.grad.clone(), weight.grad.clone())
        if key == "workspace":
            pointers = [workspace.get(slot, 3, 11, torch.float32, hidden.device).data_ptr() for slot in (0, 1)]
    for key in ("workspace", "again"):
        for got, want in zip(results[key], results["fresh"], strict=True):
            assert_close(got, want, atol=0, rtol=0)
    assert [workspace.get(slot, 3, 11, torch.float32, hidden.device).data_ptr() for slot in (0, 1)] == pointers
    assert workspace.get(0, 5, 11, torch.float32, hidden.device).shape == (5, 11)  # grows when asked for more


@pytest.mark.parametrize("chunk", [2, 100])
def test_summary_equals_its_definition_and_leaves_the_gradients_alone(chunk):
    """Entropy, mean logit and argmax hit per position, against torch's own softmax on the full logits (one target
    is set to its row's argmax, so the hit count is known not to be zero by chance)."""
    hidden, weight, ref_hidden, targets = _case()
    logits = hidden.detach() @ weight.detach().T
    targets[3] = logits[3].argmax()
    stats = head_token_stats(hidden, weight, targets, ref_hidden, weight.detach(), chunk_size=chunk, with_summary=True)
    probs = logits.softmax(-1)
    assert_close(stats.summary["entropy"], -(probs * probs.log()).sum(-1), atol=1e-6, rtol=1e-5)
    assert_close(stats.summary["logit_mean"], logits.mean(-1), atol=1e-6, rtol=1e-5)
    assert stats.summary["correct"].tolist() == (logits.argmax(-1) == targets).float().tolist()
    assert stats.summary["correct"][3] == 1
    stats.logps.sum().backward()
    with_summary = hidden.grad.clone()
    hidden.grad = None
    head_token_stats(hidden, weight, targets, chunk_size=chunk).logps.sum().backward()
    assert_close(hidden.grad, with_summary, atol=0, rtol=0)
