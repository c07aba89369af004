"""Frontier math against values computed by hand, and the vectorised bootstrap against a plain loop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tidpo.compare.frontier import bootstrap, counts, draws, envelope, interpolate, interpolate_path


def test_interpolation_on_a_rising_path():
    kl, gain = [0.0, 1.0, 3.0, 5.0], [0.0, 0.2, 0.3, 0.5]
    # b = 2: segment 1 -> 3, t = 0.5, gain 0.2 + 0.5 * 0.1 = 0.25; b = 4: 0.3 + 0.5 * 0.2 = 0.4; b = 1: the point
    assert interpolate(kl, gain, [2.0, 4.0, 1.0]) == pytest.approx([0.25, 0.4, 0.2])
    assert interpolate_path(kl, gain, 2.0) == pytest.approx(0.25)


def test_a_budget_never_reached_has_no_value():
    got = interpolate([0.0, 1.0, 1.5], [0.0, 0.1, 0.2], [1.5, 2.0])
    assert got[0] == pytest.approx(0.2) and math.isnan(got[1])
    assert math.isnan(interpolate_path([0.0, 1.0, 1.5], [0.0, 0.1, 0.2], 2.0))


def test_a_non_monotone_path_takes_the_first_segment_that_reaches_the_budget():
    # KL goes 0 -> 4 -> 1 -> 6: b = 2 lies on segment 0 (t = 0.5, gain 0.15), again on 1 and 2; the first counts
    kl, gain = [0.0, 4.0, 1.0, 6.0], [0.0, 0.3, 0.1, 0.6]
    assert interpolate(kl, gain, [2.0]) == pytest.approx([0.15])
    # b = 5 is reached only on segment 2 (1 -> 6): t = 0.8, gain 0.1 + 0.8 * 0.5 = 0.5
    assert interpolate(kl, gain, [5.0]) == pytest.approx([0.5])
    assert interpolate_path(kl, gain, 5.0) == pytest.approx(0.5)


def test_a_segment_of_zero_length_gives_its_first_point():
    assert interpolate([0.0, 2.0, 2.0], [0.0, 0.4, 0.1], [2.0]) == pytest.approx([0.4])


def test_interpolation_broadcasts_over_leading_axes():
    kl = np.array([[[0.0, 2.0]], [[0.0, 4.0]]])
    gain = np.array([[[0.0, 1.0]], [[0.0, 1.0]]])
    got = interpolate(kl, gain, [1.0, 3.0])[:, 0]
    assert got[0, 0] == 0.5 and math.isnan(got[0, 1])
    assert got[1].tolist() == [0.25, 0.75]


def test_envelope_keeps_the_points_no_lower_kl_point_beats():
    kl = [0.0, 1.0, 2.0, 2.0, 3.0, 4.0, 0.5]
    gain = [0.0, 0.3, 0.2, 0.35, 0.1, 0.5, -0.1]
    corners_kl, corners_gain = envelope(kl, gain)
    # (0.5, -0.1) is beaten by (0, 0); (2, 0.2) by (2, 0.35); (3, 0.1) by (1, 0.3)
    assert corners_kl.tolist() == [0.0, 1.0, 2.0, 4.0]
    assert corners_gain.tolist() == [0.0, 0.3, 0.35, 0.5]


def test_draws_and_counts():
    seed_index, prompt_index = draws(3, 2, 4, rng_seed=7)
    assert seed_index.shape == (3, 2) and prompt_index.shape == (3, 4)
    c = counts(np.array([[0, 0, 2], [1, 2, 2]]), 3)
    assert c.tolist() == [[2, 0, 1], [0, 1, 2]]


def _naive(kl, gain, budgets, baseline, replicates, rng_seed):
    """One replicate at a time: draw, average the drawn prompts, interpolate each drawn seed's run, average."""
    methods, seeds, _, prompts = gain.shape
    seed_index, prompt_index = draws(replicates, seeds, prompts, rng_seed)
    reward = np.full((replicates, methods, len(budgets)), np.nan)
    diff = np.full_like(reward, np.nan)
    for r in range(replicates):
        for b, budget in enumerate(budgets):
            value = np.empty((methods, seeds))
            for m in range(methods):
                for j, s in enumerate(seed_index[r]):
                    k = [0.0, *kl[m, s][:, prompt_index[r]].mean(-1)]
                    g = [0.0, *gain[m, s][:, prompt_index[r]].mean(-1)]
                    value[m, j] = interpolate_path(k, g, budget)
            reward[r, :, b] = value.mean(1)
            diff[r, :, b] = (value - value[baseline]).mean(1)
    return reward, diff


def _case():
    rng = np.random.default_rng(3)
    kl = np.cumsum(rng.uniform(0.2, 1.5, size=(3, 2, 4, 5)), axis=2)  # (methods, seeds, checkpoints, prompts)
    gain = np.cumsum(rng.normal(0.05, 0.1, size=(3, 2, 4, 5)), axis=2)
    return kl, gain


def test_vectorised_bootstrap_equals_a_per_replicate_loop():
    kl, gain = _case()
    budgets = [1.0, 2.5]
    got = bootstrap(kl, gain, budgets, baseline=1, replicates=50, rng_seed=11)
    reward, diff = _naive(kl, gain, budgets, baseline=1, replicates=50, rng_seed=11)
    for est, reps in ((got.reward, reward), (got.difference, diff)):
        missing = np.isnan(reps).sum(0)
        assert est.missing.tolist() == missing.tolist()
        for m in range(3):
            for b in range(2):
                ok = reps[:, m, b][~np.isnan(reps[:, m, b])]
                if missing[m, b] > 0.05 * 50:
                    assert math.isnan(est.low[m, b])
                else:
                    assert est.low[m, b] == pytest.approx(np.percentile(ok, 2.5), rel=1e-12, abs=1e-12)
                    assert est.high[m, b] == pytest.approx(np.percentile(ok, 97.5), rel=1e-12, abs=1e-12)


def test_point_estimate_uses_every_seed_and_prompt():
    # one method, two seeds, one checkpoint, two prompts: seed 0 at KL (1+3)/2 = 2, gain (0.1+0.3)/2 = 0.2;
    # seed 1 at KL 4, gain 0.4; at b = 1 they give 0.1 and 0.1: mean 0.1; at b = 3 seed 0 never gets there
    kl = np.array([[[[1.0, 3.0]], [[4.0, 4.0]]]])
    gain = np.array([[[[0.1, 0.3]], [[0.4, 0.4]]]])
    got = bootstrap(kl, gain, [1.0, 3.0], replicates=20, rng_seed=0)
    assert got.reward.point[0, 0] == pytest.approx(0.1)
    assert math.isnan(got.reward.point[0, 1]) and got.reached[0].tolist() == [2, 1]


def test_the_difference_to_itself_is_zero_and_the_interval_too():
    kl, gain = _case()
    got = bootstrap(kl, gain, [1.0], baseline=0, replicates=30, rng_seed=1)
    assert got.difference.point[0, 0] == 0 and got.difference.low[0, 0] == 0 and got.difference.high[0, 0] == 0


def test_bootstrap_is_fast_at_the_study_size():
    import time

    rng = np.random.default_rng(0)
    kl = np.cumsum(rng.uniform(0.1, 1.5, size=(15, 3, 5, 200)), axis=2)
    gain = np.cumsum(rng.normal(0.05, 0.1, size=(15, 3, 5, 200)), axis=2)
    start = time.perf_counter()
    bootstrap(kl, gain, [2.0, 4.0], baseline=1, replicates=2000, rng_seed=0)
    assert time.perf_counter() - start < 1.0


def test_the_math_needs_no_torch():
    import subprocess
    import sys

    code = "import sys, tidpo.compare.frontier; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "False"
