"""Importance recovery (``tidpo.eval.importance``) on hand-built explanations, and the lexicon ground truth."""

from __future__ import annotations

import pytest

from tidpo.eval.explain import Explanation, PairExplanation, ResponseExplanation
from tidpo.eval.importance import importance_recovery, relevance_by_words
from tidpo.tasks.sentiment import lexicon_token_relevance


def response(tokens, weights, gradient, prior) -> ResponseExplanation:
    n = len(tokens)
    return ResponseExplanation(tokens=tokens, token_ids=list(range(n)), weights=weights, gradient_share=gradient,
                               prior=prior, attributions=gradient, logps=[0.0] * n, span_length=n)  # fmt: skip


def test_words_split_over_tokens_mark_every_piece():
    tokens = [" a", " wond", "erful", " film", "!", "<|im_end|>"]
    assert relevance_by_words(tokens, {"wonderful"}.__contains__) == [False, True, True, False, False, False]
    # case-insensitive, and a word is matched whole: "wonder" does not mark "wonderful"
    assert relevance_by_words([" Wonderful"], {"wonderful"}.__contains__) == [True]
    assert relevance_by_words([" wonderful"], {"wonder"}.__contains__) == [False]


def test_the_lexicon_knows_sentiment_words_and_not_neutral_ones():
    marks = lexicon_token_relevance([" I", " loved", " the", " awful", " plot", "<|im_end|>"])
    assert marks == [False, True, False, True, False, False]


def test_recovery_scores_each_weighting_by_hand():
    # one response of 4 tokens, token 1 the only relevant one ("good")
    tokens = [" it", " good", " is", "<|im_end|>"]
    chosen = response(tokens, weights=[0.5, 2.0, 0.5, 1.0], gradient=[0.1, 0.2, 0.3, 0.4],
                      prior=[0.25, 0.25, 0.25, 0.25])  # fmt: skip
    # the rejected response has no relevant token: counted for the shares, not for the per-response AUC
    rejected = response([" it", " is", "<|im_end|>"], [1.0, 1.0, 1.0], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3])
    explanation = Explanation([PairExplanation(0, "p", chosen, rejected)], mix=0.7, sigma_div=4.0, span="response",
                              max_length=None)  # fmt: skip
    result = importance_recovery(explanation, lambda toks: [t == " good" for t in toks])
    assert (result["responses"], result["responses_scored"], result["tokens"]) == (2, 1, 7)
    assert result["base_rate"] == pytest.approx(1 / 7)
    # hybrid: "good" has the largest weight -> AUC 1; gradient: 0.2 beats only 0.1 of the 3 others -> 1/3
    assert result["hybrid"]["auc"] == 1.0
    assert result["gradient"]["auc"] == pytest.approx(1 / 3)
    assert result["prior"]["auc"] == 0.5  # all tied
    # EOS share, averaged over the two responses: hybrid (1/4 + 1/3) / 2; gradient (0.4 + 0.6) / 2
    assert result["hybrid"]["eos_share"] == pytest.approx((1.0 / 4.0 + 1.0 / 3.0) / 2)
    assert result["gradient"]["eos_share"] == pytest.approx(0.5)
    # relevant share: hybrid 2/4 on the chosen, 0 on the rejected
    assert result["hybrid"]["relevant_share"] == pytest.approx(0.25)
    # pooled over all 7 tokens: the hybrid's 2.0 on "good" is above all 6 others
    assert result["hybrid"]["auc_pooled"] == 1.0
    with pytest.raises(ValueError, match="2 marks for 4 tokens"):
        importance_recovery(explanation, lambda toks: [True, False])


def test_confidence_mask_by_hand_and_against_the_estimator():
    import math

    import torch

    from tidpo.eval.importance import confidence_mask_share
    from tidpo.importance.weights import token_weights

    # probabilities 0.5, 0.1, 0.4: mean 1/3, so only the 0.1 token is below it
    logps = [math.log(0.5), math.log(0.1), math.log(0.4)]
    assert confidence_mask_share(logps) == [0.0, 1.0, 0.0]
    assert confidence_mask_share([math.log(0.2)] * 3) == [0.0, 0.0, 0.0]  # all equally likely: none
    # the tensor estimator: Eq. 8 weights ∝ λ I/ΣI + (1 − λ) P on a response span
    torch.manual_seed(0)
    row = torch.randn(1, 9).clamp(max=-0.1)
    mask = torch.ones(1, 9)
    prior = token_weights("prior", mask, mix=0.0, sigma_div=4.0)[0]
    weights = token_weights("confidence", mask, policy_logps=row, mix=0.7, sigma_div=4.0)[0]
    share = torch.tensor(confidence_mask_share(row[0].tolist()))
    expected = 0.7 * share + 0.3 * prior / prior.sum()
    torch.testing.assert_close(weights / weights.sum(), expected / expected.sum())


def test_recovery_of_the_confidence_weightings_by_hand():
    # probabilities 0.6, 0.1 (" good", the relevant token), 0.5: the mask is [0, 1, 0]
    import math

    from tidpo.eval.importance import CONFIDENCE_WEIGHTINGS

    tokens = [" it", " good", "<|im_end|>"]
    chosen = response(tokens, [1.0] * 3, [1 / 3] * 3, prior=[0.2, 0.5, 0.3])
    chosen.logps = [math.log(0.6), math.log(0.1), math.log(0.5)]
    explanation = Explanation([PairExplanation(0, "p", chosen, chosen)], mix=0.5, sigma_div=4.0, span="response",
                              max_length=None)  # fmt: skip
    result = importance_recovery(
        explanation, lambda toks: [t == " good" for t in toks], weightings=CONFIDENCE_WEIGHTINGS
    )
    assert result["confidence_mask"]["auc"] == 1.0 and result["confidence_mask"]["eos_share"] == 0.0
    # confidence: 0.5 * [0, 1, 0] + 0.5 * [0.2, 0.5, 0.3] = [0.1, 0.75, 0.15]
    assert result["confidence"]["relevant_share"] == pytest.approx(0.75)
    assert result["confidence"]["eos_share"] == pytest.approx(0.15)
    assert "hybrid" not in result
