"""Token weights (Eq. 8) and the ablation estimators: hand examples, guards and the identities of docs/method.md."""

import math

import pytest
import torch
from torch.testing import assert_close

from tidpo.importance import gaussian_prior, hybrid_token_weights, token_weights
from tidpo.importance.weights import normalize_weights

# One prompt token then a 2-token response; the prompt's attribution (5) must be ignored with span='response'.
COMPLETION = torch.tensor([[0, 1, 1]])
ATTR = torch.tensor([[5.0, 1.0, 3.0]])


def test_hybrid_hand_example_mean_norm():
    """I = [1, 3] → I_norm = [.25, .75]; T = 2: σ = 1, μ = .5 → P = [.5, .5]; λ = .7:
    W = .7·[.25, .75] + .3·[.5, .5] = [.325, .675]; mean 1: w = 2·W = [.65, 1.35]; prompt 0."""
    w = token_weights("hybrid", COMPLETION, attributions=ATTR, mix=0.7, sigma_div=4.0)
    assert_close(w, torch.tensor([[0.0, 0.65, 1.35]]))


def test_hybrid_hand_example_sum_norm():
    """Same example with weight_norm='sum': w = W / ΣW = [.325, .675]."""
    w = token_weights("hybrid", COMPLETION, attributions=ATTR, mix=0.7, norm="sum")
    assert_close(w, torch.tensor([[0.0, 0.325, 0.675]]))


def test_lambda_zero_is_gaussian_times_span_length():
    """λ = 0 on a 3-token span: w = 3 · [e^-½, 1, e^-½] / (1 + 2e^-½), whatever the attributions."""
    e = math.exp(-0.5)
    completion = torch.tensor([[0, 0, 1, 1, 1]])
    w = token_weights("hybrid", completion, attributions=torch.rand(1, 5), mix=0.0)
    assert_close(w, torch.tensor([[0.0, 0.0, 3 * e, 3.0, 3 * e]]) / (1 + 2 * e))


def test_one_token_span_gets_weight_one():
    """T = 1: I_norm = P = [1] → W = [1] → w = 1·1/1 = 1, for both norms."""
    completion = torch.tensor([[0, 0, 1]])
    for norm in ("mean", "sum"):
        w = token_weights("hybrid", completion, attributions=torch.tensor([[2.0, 7.0, 0.3]]), norm=norm)
        assert_close(w, torch.tensor([[0.0, 0.0, 1.0]]))


def test_zero_importance_falls_back_to_prior():
    """ΣI = 0 on the span (prompt attribution 4 is off-span): I_norm := P, so W = λP + (1−λ)P = P."""
    completion = torch.tensor([[0, 1, 1, 1]])
    attr = torch.tensor([[4.0, 0.0, 0.0, 0.0]])
    hybrid = token_weights("hybrid", completion, attributions=attr, mix=0.7)
    prior_only = token_weights("prior", completion)
    assert_close(hybrid, prior_only)
    assert torch.isfinite(hybrid).all()


def _batch():
    """Three rows with prompts of different lengths, responses of 4, 1 and 6 tokens, right padding."""
    completion = torch.zeros(3, 9, dtype=torch.long)
    completion[0, 2:6] = 1
    completion[1, 5] = 1
    completion[2, 3:9] = 1
    attention = torch.zeros_like(completion)
    attention[0, :6], attention[1, :6], attention[2, :] = 1, 1, 1
    attr = torch.rand(3, 9, generator=torch.Generator().manual_seed(0)) * attention
    return completion, attention, attr


@pytest.mark.parametrize("estimator", ["hybrid", "gradient", "prior", "uniform", "random"])
def test_weights_nonnegative_zero_off_span_mean_one(estimator):
    """Every estimator over the response: w ≥ 0, w = 0 off the response, Σ_response w = T (mean 1)."""
    completion, attention, attr = _batch()
    w = token_weights(estimator, completion, attributions=attr, attention_mask=attention)
    assert (w >= 0).all()
    assert torch.equal(w[completion == 0], torch.zeros(int((completion == 0).sum())))
    assert_close(w.sum(-1), completion.sum(-1).float())


@pytest.mark.parametrize(("estimator", "mix"), [("hybrid", 0.7), ("gradient", 1.0), ("prior", 0.0)])
def test_sequence_span_is_the_response_slice_of_weights_normalised_over_the_sequence(estimator, mix):
    """weight_span='sequence' (the authors' code): Eq. 8 and the mean-1 rescale over prompt + response, then the
    response slice as it is: its total is not T, and differs between rows."""
    completion, attention, attr = _batch()
    w = token_weights(estimator, completion, attributions=attr, attention_mask=attention, span="sequence")
    whole = hybrid_token_weights(attr, attention, gaussian_prior(attention, 4.0), mix)
    expected = normalize_weights(whole, attention, "mean") * completion
    assert_close(w, expected)
    assert not torch.allclose(w.sum(-1)[:2], completion.sum(-1).float()[:2])  # rows 0, 1 have prompts


@pytest.mark.parametrize("estimator", ["uniform", "random"])
def test_uniform_and_random_ignore_the_span(estimator):
    completion, attention, attr = _batch()
    kwargs = {"attributions": attr, "attention_mask": attention}
    seq = token_weights(estimator, completion, span="sequence", generator=torch.Generator().manual_seed(0), **kwargs)
    resp = token_weights(estimator, completion, span="response", generator=torch.Generator().manual_seed(0), **kwargs)
    assert torch.equal(seq, resp)


def test_sum_norm_sums_to_one_per_row():
    """weight_norm='sum': Σ_response w = 1 in every row."""
    completion, attention, attr = _batch()
    w = token_weights("hybrid", completion, attributions=attr, attention_mask=attention, norm="sum")
    assert_close(w.sum(-1), torch.ones(3))


def test_uniform_is_the_completion_mask():
    """'uniform' = plain DPO weighting: 1 on every response token, 0 elsewhere."""
    completion, _, _ = _batch()
    assert torch.equal(token_weights("uniform", completion), completion.float())


def test_random_is_reproducible_with_a_seeded_generator():
    """Same seed → same weights; a different seed → different weights; mean 1 on the response."""
    completion, _, _ = _batch()
    a = token_weights("random", completion, generator=torch.Generator().manual_seed(3))
    b = token_weights("random", completion, generator=torch.Generator().manual_seed(3))
    c = token_weights("random", completion, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert_close(a.sum(-1), completion.sum(-1).float())


@pytest.mark.parametrize(("estimator", "mix"), [("gradient", 1.0), ("prior", 0.0)])
def test_named_estimators_equal_hybrid_at_their_lambda(estimator, mix):
    """'gradient' = hybrid with λ = 1 and 'prior' = hybrid with λ = 0 (the `mix` argument is overridden)."""
    completion, attention, attr = _batch()
    named = token_weights(estimator, completion, attributions=attr, mix=0.7)
    assert_close(named, token_weights("hybrid", completion, attributions=attr, mix=mix))


def test_sequence_span_hand_example():
    """Prompt 2 + response 3 tokens, I = [1, 2, 3, 4, 0] (ΣI = 10), λ = .2, sigma_div 8 (the official preset).
    Over the sequence T = 5: σ = max(5/8, 1) = 1, μ = 2, P ∝ [e^-2, e^-.5, 1, e^-.5, e^-2], Z ≈ 2.48373,
    P ≈ [.05449, .24420, .40262, .24420, .05449]; I/ΣI = [.1, .2, .3, .4, 0];
    W = .2·I/ΣI + .8·P ≈ [.06359, .23536, .38210, .27536, .04359] (sums to 1), w = 5·W/ΣW = 5·W.
    The response keeps w[2:] ≈ [1.91048, 1.37681, .21795] as it is: it sums to 3.50524, not 3 (the earlier
    re-normalised slice was [1.63511, 1.17835, .18654]; span='response' gives [.91491, 1.42733, .65776])."""
    z = math.exp(-2) * 2 + math.exp(-0.5) * 2 + 1
    prior = [math.exp(-0.5 * (t - 2) ** 2) / z for t in range(5)]
    raw = [0.2 * i / 10 + 0.8 * p for i, p in zip([1, 2, 3, 4, 0], prior, strict=True)]
    expected = torch.tensor([[0.0, 0.0] + [5 * x / sum(raw) for x in raw[2:]]])
    kwargs = {"attributions": torch.tensor([[1.0, 2.0, 3.0, 4.0, 0.0]]), "mix": 0.2, "sigma_div": 8.0}
    completion = torch.tensor([[0, 0, 1, 1, 1]])
    w = token_weights("hybrid", completion, attention_mask=torch.ones(1, 5), span="sequence", **kwargs)
    assert_close(w, expected)
    assert_close(expected[0, 2:], torch.tensor([1.91048, 1.37681, 0.21795]), atol=1e-5, rtol=0)
    assert_close(w.sum(), torch.tensor(3.50524), atol=1e-5, rtol=0)
    response = token_weights("hybrid", completion, span="response", **kwargs)
    assert_close(response[0, 2:], torch.tensor([0.91491, 1.42733, 0.65776]), atol=1e-5, rtol=0)


def test_nan_attributions_raise():
    """A NaN attribution must fail loudly (FloatingPointError), never turn into uniform weights."""
    with pytest.raises(FloatingPointError):
        token_weights("hybrid", COMPLETION, attributions=torch.tensor([[0.0, float("nan"), 1.0]]))


def test_callable_estimator_replaces_attributions():
    """A callable's scores [0, 1, 3] stand in for I (attributions=None): λ = 1 → w = 2·[1, 3]/4 = [.5, 1.5].
    It receives (input_ids, attention_mask, completion_mask)."""
    ids, attention = torch.tensor([[7, 8, 9]]), torch.ones(1, 3, dtype=torch.long)
    seen = []

    def estimator(input_ids, attention_mask, completion_mask):
        seen.append((input_ids, attention_mask, completion_mask))
        return torch.tensor([[0.0, 1.0, 3.0]])

    w = token_weights(estimator, COMPLETION, input_ids=ids, attention_mask=attention, mix=1.0)
    assert_close(w, torch.tensor([[0.0, 0.5, 1.5]]))
    assert seen[0][0] is ids and seen[0][1] is attention and seen[0][2] is COMPLETION


def test_unknown_estimator_raises():
    """A typo in the estimator name is an error naming the choices."""
    with pytest.raises(ValueError, match="hybrid"):
        token_weights("gradients", COMPLETION, attributions=ATTR)


def test_hybrid_token_weights_sums_to_one_on_span():
    """Eq. 8 before rescaling: I = [1, 3], P = [.5, .5], λ = .5 → W = .5·[.25, .75] + .5·[.5, .5] = [.375, .625]."""
    span = torch.tensor([[0, 1, 1]])
    w = hybrid_token_weights(ATTR, span, gaussian_prior(span), mix=0.5)
    assert_close(w, torch.tensor([[0.0, 0.375, 0.625]]))


def test_normalize_weights_all_zero_row_becomes_uniform():
    """Raw weights all 0 on the response: the guard gives mean-1 uniform weights [0, 1, 1], not NaN."""
    w = normalize_weights(torch.zeros(1, 3), COMPLETION, "mean")
    assert_close(w, torch.tensor([[0.0, 1.0, 1.0]]))
