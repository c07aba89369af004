"""The chunked head multiplies in the dtype the model's own head would (the weight's, or autocast's while it is
on), forward and backward, and keeps its statistics in fp32. The first GPU run found the backward's weight
gradient multiplied in fp32 for a bf16 model: a product a GPU runs many times slower than in bf16."""

from __future__ import annotations

import torch
from torch.testing import assert_close
from torch.utils._python_dispatch import TorchDispatchMode

from tests.device import current_device
from tidpo.lm_head import head_token_stats
from tidpo.ops import per_token_kl, per_token_logps

N, D, V = 12, 16, 40


class VocabProducts(TorchDispatchMode):
    """Records the input dtypes of every matrix product with a vocabulary-sized operand (backward's too)."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[torch.dtype, ...]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten.mm, torch.ops.aten.addmm):
            mats = [a for a in args if isinstance(a, torch.Tensor) and a.dim() == 2]
            if any(V in m.shape for m in mats):
                self.seen.append(tuple(m.dtype for m in mats[-2:]))
        return func(*args, **(kwargs or {}))


def _case(dtype):
    g, device = torch.Generator().manual_seed(3), current_device()
    hidden = torch.randn(N, D, generator=g).to(device, dtype).requires_grad_()
    weight = (torch.randn(V, D, generator=g) / D**0.5).to(device, dtype).requires_grad_()
    ref_hidden = torch.randn(N, D, generator=g).to(device, dtype)
    targets = torch.randint(0, V, (N,), generator=g).to(device)
    return hidden, weight, ref_hidden, targets


def _loss(stats):
    coef = torch.linspace(-1.0, 2.0, N, device=stats.logps.device)
    return (coef * stats.logps + coef.flip(0) * stats.kl).sum()


def _plain_loss(hidden, weight, ref_hidden, targets):
    """The plain route: the model's head on every row (in whatever dtype autocast or the weight gives), then
    tidpo.ops in fp32."""
    logits = (hidden @ weight.T).float().unsqueeze(0)
    ref_logits = (ref_hidden @ weight.detach().T).float().unsqueeze(0)
    pad = torch.zeros(1, 1, V, device=logits.device)
    ids = torch.cat([targets.new_zeros(1), targets]).unsqueeze(0)
    full, ref_full = torch.cat([logits, pad], 1), torch.cat([ref_logits, pad], 1)
    logps = per_token_logps(full, ids)[0, 1:]
    kl = per_token_kl(ref_full, full)[0, 1:]
    coef = torch.linspace(-1.0, 2.0, N, device=logits.device)
    return (coef * logps + coef.flip(0) * kl).sum()


def _grads(loss_fn, hidden, weight):
    hidden.grad = weight.grad = None
    loss_fn().backward()
    return hidden.grad.float(), weight.grad.float()


def test_a_bf16_head_multiplies_in_bf16_both_ways_and_matches_the_plain_route():
    hidden, weight, ref_hidden, targets = _case(torch.bfloat16)
    with VocabProducts() as products:
        stats = head_token_stats(hidden, weight, targets, ref_hidden, weight.detach(), chunk_size=5)
        fast = _grads(lambda: _loss(stats), hidden, weight)
    # forward: policy and reference per chunk; backward: recompute, reference (KL rows), ∂hidden, ∂weight
    assert len(products.seen) >= 12 and all(set(dts) == {torch.bfloat16} for dts in products.seen), products.seen
    assert stats.logps.dtype == torch.float32
    plain = _grads(lambda: _plain_loss(hidden, weight, ref_hidden, targets), hidden, weight)
    for got, want in zip(
        fast, plain, strict=True
    ):  # bf16 products: agreement to bf16's precision, relative to the scale
        assert (got - want).abs().max() <= 2e-2 * want.abs().max()


def test_under_autocast_fp32_weights_are_multiplied_in_the_autocast_dtype():
    hidden, weight, ref_hidden, targets = _case(torch.float32)
    kind = current_device().type
    with torch.autocast(kind, dtype=torch.bfloat16), VocabProducts() as products:
        stats = head_token_stats(hidden, weight, targets, ref_hidden, weight.detach(), chunk_size=5)
        plain_logps = _plain_loss(hidden, weight, ref_hidden, targets)
    fast = _grads(lambda: _loss(stats), hidden, weight)
    head_products = products.seen[: len(products.seen) - 2]  # the last two are the plain route's own
    assert head_products and all(set(dts) == {torch.bfloat16} for dts in head_products), products.seen
    exact = _grads(lambda: _plain_loss(hidden, weight, ref_hidden, targets), hidden, weight)  # fp32 throughout
    for got, want in zip(fast, exact, strict=True):
        assert (got - want).abs().max() <= 3e-2 * want.abs().max()
        assert (got - want).abs().max() > 0  # bf16 products, not fp32 ones: the autocast dtype was used
    assert_close(_loss(stats), plain_logps, atol=0.05, rtol=2e-2)


def test_fp32_without_autocast_is_unchanged_to_the_last_bit():
    """The fp32 route (every CPU test) still multiplies in fp32, and chunking changes nothing measurable."""
    hidden, weight, ref_hidden, targets = _case(torch.float32)
    with VocabProducts() as products:
        stats = head_token_stats(hidden, weight, targets, ref_hidden, weight.detach(), chunk_size=5)
        fast = _grads(lambda: _loss(stats), hidden, weight)
    assert products.seen and all(set(dts) == {torch.float32} for dts in products.seen)
    plain = _grads(lambda: _plain_loss(hidden, weight, ref_hidden, targets), hidden, weight)
    for got, want in zip(fast, plain, strict=True):
        assert_close(got, want, atol=1e-5, rtol=1e-5)
