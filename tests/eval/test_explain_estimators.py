"""``explain_pairs(importance=...)``: the weights of any computed estimator, as training computes them, with their
components (the estimator's scores, their share, the prior), checked by hand on the confidence mask."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from tidpo.data import PreferenceCollator, tokenize_preference_dataset
from tidpo.eval.explain import explain_pairs
from tidpo.importance import gaussian_prior, token_weights
from tidpo.ops import per_token_logps


def _sides(explanation):
    return [side for pair in explanation.pairs for side in (pair.chosen, pair.rejected)]


def test_confidence_scores_are_the_tokens_below_the_mean_probability_by_hand(tiny, pairs):
    model, tokenizer = tiny
    explanation = explain_pairs(model, tokenizer, pairs, n=3, max_length=64, importance="confidence", mix=0.7)
    assert explanation.importance == "confidence" and not explanation.attributed
    for side in _sides(explanation):
        mean_prob = sum(math.exp(lp) for lp in side.logps) / side.num_tokens
        expected = [1.0 if lp < math.log(mean_prob) else 0.0 for lp in side.logps]
        assert side.attributions == expected and 0 < sum(expected) < side.num_tokens
        share = torch.tensor(expected) / sum(expected)
        assert_close(torch.tensor(side.gradient_share), share)
        prior = gaussian_prior(torch.ones(1, side.num_tokens), 4.0)[0]
        assert_close(torch.tensor(side.prior), prior)
        assert_close(torch.tensor(side.weights), side.num_tokens * (0.7 * share + 0.3 * prior), rtol=1e-5, atol=1e-5)


def test_confidence_weights_equal_token_weights_from_the_policys_log_probs(tiny, pairs):
    """Training's path: ``token_weights("confidence", ...)`` of the per-token log-probs on the same batch."""
    model, tokenizer = tiny
    rows = tokenize_preference_dataset(pairs, tokenizer, max_length=64).to_list()
    batch = PreferenceCollator(tokenizer.pad_token_id, max_length=64)(rows)
    completion = batch["completion_mask"]
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    expected = token_weights(
        "confidence", completion, policy_logps=per_token_logps(logits, batch["input_ids"]) * completion
    )
    explanation = explain_pairs(model, tokenizer, pairs, n=len(pairs), max_length=64, importance="confidence")
    response, n = completion.bool(), len(pairs)
    for b, pair in enumerate(explanation.pairs):
        assert_close(torch.tensor(pair.chosen.weights), expected[b][response[b]])
        assert_close(torch.tensor(pair.rejected.weights), expected[n + b][response[n + b]])


def test_estimators_without_the_prior_and_the_refused_columns(tiny, pairs):
    model, tokenizer = tiny
    uniform = explain_pairs(model, tokenizer, pairs, n=1, max_length=64, importance="uniform").pairs[0].chosen
    assert uniform.weights == [1.0] * uniform.num_tokens and set(uniform.prior) == {0.0}
    assert_close(sum(uniform.gradient_share), 1.0)
    prior_only = explain_pairs(model, tokenizer, pairs, n=1, max_length=64, importance="prior").pairs[0].chosen
    expected = prior_only.num_tokens * gaussian_prior(torch.ones(1, prior_only.num_tokens), 4.0)[0]
    assert_close(torch.tensor(prior_only.weights), expected)
    with pytest.raises(ValueError, match="importance='columns' takes its weights from the dataset's columns"):
        explain_pairs(model, tokenizer, pairs, n=1, max_length=64, importance="columns")


def test_the_attribution_estimators_still_differentiate(tiny, pairs):
    model, tokenizer = tiny
    hybrid = explain_pairs(model, tokenizer, pairs, n=1, max_length=64, importance="hybrid")
    confidence = explain_pairs(model, tokenizer, pairs, n=1, max_length=64, importance="confidence")
    assert hybrid.attributed
    side = hybrid.pairs[0].chosen
    assert len(set(side.attributions)) > 2  # real-valued attributions, not a 0/1 mask
    assert_close(side.logps, confidence.pairs[0].chosen.logps)  # the same forward, with or without a graph


def test_the_row_index_column_explain_adds_is_not_warned_of(tiny, pairs, caplog):
    import logging

    model, tokenizer = tiny
    with caplog.at_level(logging.WARNING, logger="tidpo"):
        explain_pairs(model, tokenizer, pairs.add_column("note", ["x"] * len(pairs)), n=1, max_length=64)
    assert "'note'" in caplog.text and "explain_row" not in caplog.text  # the user's extra column still is


def test_the_gradient_estimators_at_lambda_zero_are_the_prior_without_an_attribution_pass(tiny, pairs):
    """λ = 0: training skips the attribution pass and Eq. 8 is the prior alone; explain must do the same."""
    model, tokenizer = tiny
    side = explain_pairs(model, tokenizer, pairs, n=1, max_length=64, importance="hybrid", mix=0.0).pairs[0].chosen
    prior = side.num_tokens * gaussian_prior(torch.ones(1, side.num_tokens), 4.0)[0]
    assert_close(torch.tensor(side.weights), prior)
    assert set(side.attributions) == {0.0}
