"""tidpo.eval.metrics against values worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math
import random

import pytest

from tidpo.eval.metrics import (
    _percentile_indices,
    bleu,
    distinct_n,
    eos_share,
    mean_and_ci,
    paired_difference,
    roc_auc,
    self_bleu,
    win_rate,
    words,
)

NAN = float("nan")
SENTENCES = ["the cat sat", "the cat ran", "a dog sat"]


# ---- words --------------------------------------------------------------------------------------------------
def test_words_lowercases_and_splits_punctuation():
    assert words("Hello, World!  It's 2x") == ["hello", ",", "world", "!", "it", "'", "s", "2x"]
    assert words("...") == [".", ".", "."]
    assert words("   ") == []


# ---- distinct-n ---------------------------------------------------------------------------------------------
def test_distinct_n_by_hand():
    # tokens: the cat sat | the cat ran | a dog sat -> 9 unigrams, distinct {the, cat, sat, ran, a, dog} = 6 -> 6/9
    assert distinct_n(SENTENCES, 1) == pytest.approx(6 / 9)
    # bigrams: (the cat) (cat sat) | (the cat) (cat ran) | (a dog) (dog sat) -> 6, "the cat" repeats -> 5 distinct
    assert distinct_n(SENTENCES, 2) == pytest.approx(5 / 6)
    # trigrams: one per sentence, all different -> 3/3
    assert distinct_n(SENTENCES, 3) == 1.0
    # no sentence has 4 tokens -> no 4-gram at all -> 0.0
    assert distinct_n(SENTENCES, 4) == 0.0


def test_distinct_n_does_not_join_texts():
    # "a b" + "a b": bigrams (a b), (a b) -> 1 distinct of 2; a cross-text bigram (b a) would make it 2/3
    assert distinct_n(["a b", "a b"], 2) == pytest.approx(1 / 2)


def test_distinct_n_errors():
    with pytest.raises(ValueError, match="empty"):
        distinct_n([], 1)
    with pytest.raises(ValueError, match="n must be"):
        distinct_n(SENTENCES, 0)
    with pytest.raises(TypeError, match="single string"):
        distinct_n("the cat sat", 1)


# ---- BLEU ---------------------------------------------------------------------------------------------------
def test_bleu_identical_text_is_one():
    assert bleu("The cat sat on the mat.", ["the cat sat on the mat ."]) == pytest.approx(1.0)
    # shorter than max_n: p_1 = 2/2, p_2 = (1+1)/(1+1), p_3 = p_4 = (0+1)/(0+1) -> 1
    assert bleu("the cat", ["the cat"]) == pytest.approx(1.0)


def test_bleu_by_hand_against_two_references():
    # hyp "the cat ran", refs "the cat sat", "a dog sat":
    # p_1 = the, cat match, ran not -> 2/3; p_2 = (the cat) matches, (cat ran) not -> (1+1)/(2+1) = 2/3
    # p_3 = (the cat ran) not -> (0+1)/(1+1) = 1/2; p_4 = no 4-gram -> (0+1)/(0+1) = 1; c = r = 3 -> BP = 1
    assert bleu("the cat ran", ["the cat sat", "a dog sat"], max_n=2) == pytest.approx(2 / 3)
    assert bleu("the cat ran", ["the cat sat", "a dog sat"]) == pytest.approx((2 / 3 * 2 / 3 * 1 / 2) ** 0.25)


def test_bleu_clips_counts_to_the_largest_count_in_one_reference():
    # hyp "the the the", ref "the cat": "the" clipped to 1 -> p_1 = 1/3; (the the) x2, no match -> p_2 = 1/3;
    # p_3 = (0+1)/(1+1) = 1/2; p_4 = 1; c = 3 >= r = 2 -> BP = 1
    assert bleu("the the the", ["the cat"]) == pytest.approx((1 / 3 * 1 / 3 * 1 / 2) ** 0.25)
    # max over references, not sum: "the" appears once in each ref -> clip at 1, p_1 = 1/3 (a sum would give 2/3)
    assert bleu("the the the", ["the cat", "the dog"], max_n=1) == pytest.approx(1 / 3)
    # ref 2 has "the" twice -> clip at 2 -> p_1 = 2/2; (the the) in ref 2 -> p_2 = 2/2; c = r = 2 -> 1
    assert bleu("the the", ["the cat", "the the dog"], max_n=2) == pytest.approx(1.0)


def test_bleu_brevity_penalty():
    # hyp "the cat" (c = 2), ref "the cat sat on the mat" (r = 6): all p_n = 1 (p_1 = 2/2, p_2 = 2/2, p_3 = p_4 = 1/1)
    # BP = exp(1 - 6/2) = exp(-2)
    assert bleu("the cat", ["the cat sat on the mat"]) == pytest.approx(math.exp(-2))


def test_bleu_closest_reference_length_tie_takes_the_shorter():
    # c = 3; refs of length 1 and 5 are both 2 away -> r = 1 -> c >= r -> BP = 1. Precisions: p_1 = 3/3,
    # p_2 = (2+1)/(2+1), p_3 = (1+1)/(1+1), p_4 = 1/1 -> BLEU = 1. (Taking r = 5 would give exp(1 - 5/3).)
    assert bleu("the cat sat", ["the", "the cat sat on the"]) == pytest.approx(1.0)
    # closest is unambiguous here: lengths 4 and 9, c = 3 -> r = 4 -> BP = exp(1 - 4/3)
    got = bleu("the cat sat", ["the cat sat down", "the cat sat on the mat all day"], max_n=1)
    assert got == pytest.approx(math.exp(1 - 4 / 3))


def test_bleu_zero_cases():
    assert bleu("", ["the cat"]) == 0.0  # empty hypothesis
    assert bleu("x y z", ["the cat"]) == 0.0  # no unigram match -> 0, even though p_2.. are smoothed


def test_bleu_errors():
    with pytest.raises(ValueError, match="references is empty"):
        bleu("the cat", [])
    with pytest.raises(TypeError, match="single string"):
        bleu("the cat", "the cat")
    with pytest.raises(ValueError, match="max_n"):
        bleu("the cat", ["the cat"], max_n=0)


# ---- Self-BLEU ----------------------------------------------------------------------------------------------
def test_self_bleu_by_hand():
    # One group of the three sentences; each is scored against the other two (c = r = 3 always, so BP = 1).
    # "the cat sat" vs {the cat ran, a dog sat}: p_1 = 3/3; p_2 = (the cat) yes, (cat sat) no -> 2/3; p_3 = 1/2; p_4 = 1
    # "the cat ran" vs {the cat sat, a dog sat}: p_1 = 2/3; p_2 = 2/3; p_3 = 1/2; p_4 = 1
    # "a dog sat" vs {the cat sat, the cat ran}: p_1 = 1/3 (sat); p_2 = (0+1)/(2+1) = 1/3; p_3 = 1/2; p_4 = 1
    # BLEU-2: sqrt(1 · 2/3), sqrt(2/3 · 2/3) = 2/3, sqrt(1/3 · 1/3) = 1/3 -> mean (sqrt(2/3) + 1) / 3
    assert self_bleu([SENTENCES], max_n=2) == pytest.approx((math.sqrt(2 / 3) + 1) / 3)
    # BLEU-4: (1/3)^(1/4), (2/9)^(1/4), (1/18)^(1/4)
    expected = ((1 / 3) ** 0.25 + (2 / 9) ** 0.25 + (1 / 18) ** 0.25) / 3
    assert self_bleu([SENTENCES]) == pytest.approx(expected)


def test_self_bleu_stays_within_groups_and_skips_singletons():
    # group 1: "the cat sat" vs "the cat ran": p_1 = 2/3, p_2 = (1+1)/(2+1) = 2/3 -> BLEU-2 = 2/3; symmetric -> 2/3
    # group 2 has one text -> skipped (scoring "a dog sat" against group 1 would pull the mean down)
    assert self_bleu([SENTENCES[:2], SENTENCES[2:]], max_n=2) == pytest.approx(2 / 3)


def test_self_bleu_errors():
    with pytest.raises(ValueError, match="groups is empty"):
        self_bleu([])
    with pytest.raises(ValueError, match="no text could be scored"):
        self_bleu([["only one"], ["another"], []])
    with pytest.raises(TypeError, match="single string"):
        self_bleu(["the cat sat", "a dog sat"])


# ---- bootstrap ----------------------------------------------------------------------------------------------
def test_percentile_index_rule():
    # floor((1 - q)/2 · B), ceil((1 + q)/2 · B) - 1
    assert _percentile_indices(0.95, 10000) == (250, 9749)
    assert _percentile_indices(0.9, 10000) == (500, 9499)  # 0.9 is taken as exactly 9/10, not its binary value
    assert _percentile_indices(0.9, 40) == (2, 37)
    assert _percentile_indices(0.8, 20) == (2, 17)
    assert _percentile_indices(0.95, 1) == (0, 0)


def test_mean_and_ci_fixed_seed_rederived():
    values = [1.0, 2.0, 4.0, 8.0]
    got = mean_and_ci(values, confidence=0.9, n_resamples=40, seed=7)
    rng = random.Random(7)
    means = []
    for _ in range(40):
        picks = rng.choices(range(4), k=4)
        means.append(sum(values[i] for i in picks) / 4)
    means.sort()
    # B = 40, q = 0.9: low index floor(0.05 · 40) = 2, high index ceil(0.95 · 40) - 1 = 37
    assert got["mean"] == pytest.approx(15 / 4)
    assert got["n"] == 4
    assert got["low"] == pytest.approx(means[2])
    assert got["high"] == pytest.approx(means[37])
    assert mean_and_ci(values, confidence=0.9, n_resamples=40, seed=7) == got  # deterministic
    assert mean_and_ci(values, confidence=0.9, n_resamples=40, seed=8) != got  # and the seed matters


def test_mean_and_ci_cluster_fixed_seed_rederived():
    values = [1.0, 1.0, 5.0, 5.0, 5.0, 9.0]
    groups = ["a", "a", "b", "b", "b", "c"]
    got = mean_and_ci(values, confidence=0.8, n_resamples=20, seed=3, groups=groups)
    # groups in order of first appearance: a (sum 2, 2 values), b (15, 3), c (9, 1)
    sums, counts = [2.0, 15.0, 9.0], [2, 3, 1]
    rng = random.Random(3)
    means = []
    for _ in range(20):
        picks = rng.choices(range(3), k=3)
        means.append(sum(sums[g] for g in picks) / sum(counts[g] for g in picks))
    means.sort()
    # B = 20, q = 0.8: low index floor(0.1 · 20) = 2, high index ceil(0.9 · 20) - 1 = 17
    assert got["mean"] == pytest.approx(26 / 6)  # the mean of all values, not of the group means
    assert got["low"] == pytest.approx(means[2])
    assert got["high"] == pytest.approx(means[17])


def test_mean_and_ci_properties():
    values = [float(i % 7) for i in range(30)]
    ci = mean_and_ci(values, n_resamples=2000)
    assert ci["low"] <= ci["mean"] <= ci["high"]
    assert ci["low"] < ci["high"]
    constant = mean_and_ci([0.1] * 12, n_resamples=200)
    assert constant["low"] == constant["high"] == pytest.approx(0.1)
    few = mean_and_ci([0.0, 1.0] * 5, n_resamples=1000)
    many = mean_and_ci([0.0, 1.0] * 100, n_resamples=1000)
    assert many["high"] - many["low"] < 0.5 * (few["high"] - few["low"])  # width ~ 1/sqrt(n): ratio ~ 0.22


def test_cluster_bootstrap_is_wider_for_clustered_data_and_equal_for_singletons():
    values = [float(g) for g in range(6) for _ in range(5)]  # 6 prompts, 5 identical samples each
    groups = [g for g in range(6) for _ in range(5)]
    iid = mean_and_ci(values, n_resamples=1000)
    cluster = mean_and_ci(values, n_resamples=1000, groups=groups)
    assert cluster["mean"] == iid["mean"] == pytest.approx(2.5)
    assert cluster["high"] - cluster["low"] > 1.5 * (iid["high"] - iid["low"])  # sqrt(5) wider in expectation
    # one group per value: the same draws, so the same interval as without groups
    distinct = mean_and_ci(values, n_resamples=300, groups=list(range(30)))
    assert distinct == mean_and_ci(values, n_resamples=300)


def test_mean_and_ci_errors():
    with pytest.raises(ValueError, match="values is empty"):
        mean_and_ci([])
    with pytest.raises(ValueError, match="NaN"):
        mean_and_ci([1.0, NAN, 2.0])
    with pytest.raises(ValueError, match="infinite"):
        mean_and_ci([1.0, math.inf])
    with pytest.raises(ValueError, match="differ in length"):
        mean_and_ci([1.0, 2.0], groups=["a"])
    with pytest.raises(ValueError, match="confidence"):
        mean_and_ci([1.0, 2.0], confidence=1.0)
    with pytest.raises(ValueError, match="n_resamples"):
        mean_and_ci([1.0, 2.0], n_resamples=0)


def test_paired_difference():
    policy, reference = [3.0, 5.0, 4.0, 6.0], [1.0, 4.0, 4.0, 2.0]
    got = paired_difference(policy, reference, n_resamples=50, seed=1)
    # differences 2, 1, 0, 4 -> mean 7/4
    assert got["mean"] == pytest.approx(7 / 4)
    assert got == mean_and_ci([2.0, 1.0, 0.0, 4.0], n_resamples=50, seed=1)
    grouped = paired_difference(policy, reference, groups=["p", "p", "q", "q"], n_resamples=50, seed=1)
    assert grouped == mean_and_ci([2.0, 1.0, 0.0, 4.0], n_resamples=50, seed=1, groups=["p", "p", "q", "q"])
    with pytest.raises(ValueError, match="differ in length"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        paired_difference([1.0, 2.0], [1.0, NAN])
    with pytest.raises(ValueError, match="empty"):
        paired_difference([], [])


# ---- win rate, AUC, EOS share -------------------------------------------------------------------------------
def test_win_rate():
    # wins at 0 and 3, tie at 1, loss at 2 -> (1 + 0.5 + 0 + 1) / 4 = 0.625
    assert win_rate([2.0, 1.0, 0.0, 5.0], [1.0, 1.0, 3.0, 4.0]) == pytest.approx(0.625)
    assert win_rate([1.0], [1.0]) == 0.5
    with pytest.raises(ValueError, match="differ in length"):
        win_rate([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        win_rate([NAN], [1.0])
    with pytest.raises(ValueError, match="empty"):
        win_rate([], [])


def test_roc_auc_five_items_with_tie():
    scores = [0.5, 0.9, 0.1, 0.5, 0.5]
    labels = [0, 1, 0, 1, 0]
    # pairs (positive, negative), P = 2, N = 3 -> 6 pairs:
    #   0.9 vs 0.5, 0.1, 0.5 -> 3 wins; 0.5 vs 0.5, 0.5 -> 2 ties = 1; 0.5 vs 0.1 -> 1 win  => 5 / 6
    # ranks: 0.1 -> 1; the three 0.5s share ranks 2, 3, 4 -> 3; 0.9 -> 5. R_+ = 5 + 3 = 8, U = 8 - 2·3/2 = 5 -> 5/6
    assert roc_auc(scores, labels) == pytest.approx(5 / 6)
    assert roc_auc(scores, [bool(x) for x in labels]) == pytest.approx(5 / 6)
    assert roc_auc([1.0, 2.0, 3.0], [0, 1, 1]) == 1.0
    assert roc_auc([1.0, 2.0, 3.0], [1, 1, 0]) == 0.0
    assert roc_auc([7.0, 7.0, 7.0, 7.0], [1, 0, 0, 1]) == 0.5


def test_roc_auc_errors():
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="labels must be 0/1"):
        roc_auc([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="differ in length"):
        roc_auc([0.1, 0.2], [0])
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([0.1, NAN], [0, 1])
    with pytest.raises(ValueError, match="empty"):
        roc_auc([], [])


def test_eos_share():
    # 0.5 / (1 + 2 + 1.5 + 0.5) = 0.5 / 5 = 0.1
    assert eos_share([1.0, 2.0, 1.5, 0.5]) == pytest.approx(0.1)
    assert eos_share([3.0]) == 1.0
    with pytest.raises(ValueError, match="not positive"):
        eos_share([0.0, 0.0])
    with pytest.raises(ValueError, match="not positive"):
        eos_share([1.0, -2.0])
    with pytest.raises(ValueError, match="NaN"):
        eos_share([1.0, NAN])
    with pytest.raises(ValueError, match="empty"):
        eos_share([])
