"""Gradient attribution (Eqs. 5–6) on a tiny causal model: naive oracle, fused = separate, `.grad` untouched."""

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from tidpo.importance import embedding_attributions, separate_attributions
from tidpo.importance.attribution import last_token_index

VOCAB, DIM = 11, 6


class TinyCausalLM(nn.Module):
    """embedding → linear → tanh → causal running mean over positions → linear to the vocabulary."""

    def __init__(self, causal: bool = True):
        super().__init__()
        self.embed, self.mix, self.head = nn.Embedding(VOCAB, DIM), nn.Linear(DIM, DIM), nn.Linear(DIM, VOCAB)
        self.causal = causal

    def logits_from_embeds(self, embeds):
        h = torch.tanh(self.mix(embeds))  # (B, L, D)
        if self.causal:
            h = h.cumsum(1) / torch.arange(1, h.shape[1] + 1).view(1, -1, 1)  # token i sees tokens ≤ i
        else:
            h = h + h.mean(1, keepdim=True)  # every token sees every token, padding included
        return self.head(h)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return TinyCausalLM()


# Right padding: row 0 has 3 real tokens, row 1 has 5.
IDS = torch.tensor([[3, 1, 4, 0, 0], [1, 5, 9, 2, 6]])
MASK = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])


def naive_attributions(model, ids, mask):
    """Row by row: backward of max_v logits[last real token, v]; I_i = ‖∂/∂e_i‖₁; 0 on padding."""
    rows = []
    for b in range(ids.shape[0]):
        embeds = model.embed(ids[b : b + 1]).detach().requires_grad_(True)
        last = int(mask[b].sum()) - 1
        model.logits_from_embeds(embeds)[0, last].max().backward()
        rows.append(embeds.grad[0].abs().sum(-1) * mask[b])
    return torch.stack(rows)


def test_fused_attribution_matches_naive_per_row(model):
    """Batched, summed target = per-row backward of each row's own max logit at its last REAL token."""
    embeds = model.embed(IDS)
    attr = embedding_attributions(model.logits_from_embeds(embeds), embeds, MASK)
    expected = naive_attributions(model, IDS, MASK)
    assert_close(attr, expected)
    assert (attr[1] > 0).all() and (attr[0, :3] > 0).all()


def test_padding_gets_zero_even_when_it_influences_the_target(model):
    """With a non-causal mixer the pads do reach the target (nonzero raw gradient), yet their score is 0."""
    model.causal = False
    embeds = model.embed(IDS).detach().requires_grad_(True)
    logits = model.logits_from_embeds(embeds)
    raw = torch.autograd.grad(logits[0, 2].max(), embeds, retain_graph=True)[0][0].abs().sum(-1)
    assert (raw[3:] > 0).all()
    attr = embedding_attributions(logits, embeds, MASK)
    assert torch.equal(attr[0, 3:], torch.zeros(2))
    assert_close(attr[0, :3], raw[:3])


def test_last_token_index_right_and_left_padding():
    """Right padding [1,1,1,0,0] → 2; left padding [0,0,1,1,1] → 4; all-padding rows raise."""
    assert torch.equal(last_token_index(torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1]])), torch.tensor([2, 4]))
    with pytest.raises(ValueError, match="all-padding"):
        last_token_index(torch.tensor([[0, 0, 0]]))


def test_fused_equals_separate_and_loss_backward_still_works(model):
    """Fused (retained training graph) = separate (fresh forward); the loss backward that follows the fused call
    gives the same parameter gradients as a step without attribution."""
    embeds = model.embed(IDS)
    logits = model.logits_from_embeds(embeds)
    fused = embedding_attributions(logits, embeds, MASK, retain_graph=True)
    assert_close(fused, separate_attributions(model.logits_from_embeds, embeds, MASK))
    logits.logsumexp(-1).sum().backward()
    with_attr = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.logits_from_embeds(model.embed(IDS)).logsumexp(-1).sum().backward()
    for got, want in zip(with_attr, (p.grad for p in model.parameters()), strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("variant", ["fused", "separate"])
def test_attribution_leaves_accumulated_grads_bit_exact(model, variant):
    """Mid gradient accumulation: .grad already holds micro-batch 1's gradient; attributing micro-batch 2
    must not change a single bit of any .grad, and the result is a constant (no grad_fn)."""
    model.logits_from_embeds(model.embed(IDS)).logsumexp(-1).sum().backward()
    before = [p.grad.clone() for p in model.parameters()]
    embeds = model.embed(IDS.flip(0))
    if variant == "fused":
        attr = embedding_attributions(model.logits_from_embeds(embeds), embeds, MASK.flip(0))
    else:
        attr = separate_attributions(model.logits_from_embeds, embeds, MASK.flip(0))
    for p, grad in zip(model.parameters(), before, strict=True):
        assert torch.equal(p.grad, grad)
    assert attr.grad_fn is None and not attr.requires_grad


def test_attribution_leaves_empty_grads_empty(model):
    """Before any backward (.grad is None), both variants leave every .grad None."""
    embeds = model.embed(IDS)
    embedding_attributions(model.logits_from_embeds(embeds), embeds, MASK)
    separate_attributions(model.logits_from_embeds, embeds, MASK)
    assert all(p.grad is None for p in model.parameters())


def test_separate_attributions_work_under_no_grad(model):
    """The separate pass re-enables autograd itself, so an evaluation loop under no_grad still gets scores."""
    with torch.no_grad():
        embeds = model.embed(IDS)
        attr = separate_attributions(model.logits_from_embeds, embeds, MASK)
    assert_close(attr, naive_attributions(model, IDS, MASK))
