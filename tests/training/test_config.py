"""TIDPOConfig: the presets and baselines of docs/method.md §5, explicit values win, bad values fail early."""

import pytest

from tidpo import TIDPOConfig


def _config(**kwargs):
    return TIDPOConfig(output_dir="unused", use_cpu=True, **kwargs)


def _method(c):
    return (c.beta, c.kl_mode, c.kl_weight, c.triplet_weight, c.triplet_margin, c.importance_mix, c.prior_sigma_div)


def test_paper_preset_holds_the_papers_values():
    c = _config(preset="paper")
    assert _method(c) == (0.1, "tdpo2", 0.5, 0.1, 0.1, 0.7, 4.0)
    assert (c.importance, c.weight_span, c.weight_norm, c.attribution) == ("hybrid", "response", "mean", "fused")


def test_default_is_the_confidence_preset_the_frontier_study_chose():
    # docs/results.md: the paper's settings with the confidence estimator and no triplet term
    c = _config()
    assert c.preset == "confidence"
    assert _method(c) == (0.1, "tdpo2", 0.5, 0.0, 0.1, 0.7, 4.0)
    assert (c.importance, c.weight_span, c.weight_norm, c.attribution) == ("confidence", "response", "mean", "fused")


def test_official_preset_and_explicit_override():
    c = _config(preset="official", beta=0.3)
    assert (c.beta, c.triplet_weight, c.triplet_margin, c.importance_mix, c.prior_sigma_div, c.weight_span) == (
        0.3,
        0.001,
        0.001,
        0.2,
        8.0,
        "sequence",
    )


@pytest.mark.parametrize(
    ("baseline", "kl_mode", "kl_weight"), [("dpo", "none", 0.0), ("tdpo1", "tdpo1", 1.0), ("tdpo2", "tdpo2", 0.5)]
)
def test_baselines(baseline, kl_mode, kl_weight):
    c = _config(baseline=baseline)
    assert (c.importance, c.triplet_weight, c.kl_mode, c.kl_weight) == ("uniform", 0.0, kl_mode, kl_weight)
    assert not c.needs_attribution


def test_baseline_contradiction_names_both_fields():
    with pytest.raises(ValueError, match="baseline='dpo'.*triplet_weight=0.5"):
        _config(baseline="dpo", triplet_weight=0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"importance": "saliency"}, "importance='saliency' is not one of"),
        ({"kl_mode": "tdpo3"}, "kl_mode='tdpo3'"),
        ({"importance_mix": 1.5}, r"importance_mix must be in \[0, 1\]"),
        ({"beta": 0.0}, "beta must be > 0"),
        ({"kl_mode": "none", "kl_weight": 0.5}, "kl_mode='none' fixes kl_weight=0.0"),
        ({"preset": "fast"}, "preset='fast'"),
    ],
)
def test_bad_values_fail_with_the_option_and_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _config(**kwargs)


@pytest.mark.parametrize(
    ("importance", "mix", "expected"),
    [("hybrid", 0.7, True), ("hybrid", 0.0, False), ("prior", 0.7, False), ("gradient", 0.0, True),
     ("columns", 1.0, False), ("columns_raw", 0.7, False)],
)  # fmt: skip
def test_needs_attribution(importance, mix, expected):
    assert _config(importance=importance, importance_mix=mix).needs_attribution is expected


@pytest.mark.parametrize(
    ("importance", "mix", "columns", "zero_rows"),
    [("columns", 0.7, True, True), ("columns", 1.0, True, False), ("columns_raw", 0.7, True, False),
     ("hybrid", 0.7, False, False)],
)  # fmt: skip
def test_weight_columns_and_when_all_zero_rows_are_allowed(importance, mix, columns, zero_rows):
    c = _config(importance=importance, importance_mix=mix)
    assert (c.needs_weight_columns, c.allows_zero_weight_rows) == (columns, zero_rows)


def test_precompute_ref_logps_is_a_deprecated_alias_of_trls_name():
    with pytest.warns(FutureWarning, match="use precompute_ref_log_probs"):
        args = TIDPOConfig(output_dir="x", precompute_ref_logps=True, kl_mode="none", triplet_weight=0.0)
    assert args.precompute_ref_log_probs is True
    assert TIDPOConfig(output_dir="x").precompute_ref_log_probs is False
