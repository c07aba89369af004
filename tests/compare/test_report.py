"""The report from evaluation files laid out by hand: the table's point estimates computed by hand, "not reached",
the missing work, and the three files."""

from __future__ import annotations

import json

import pytest

from tidpo.compare.evaluate import eval_path
from tidpo.compare.report import build_report, write_report
from tidpo.compare.runs import plan
from tidpo.compare.spec import parse_spec

from .test_spec import GOOD

# (method, seed) -> [(KL, gain) at step 2, at step 4]; both prompts alike
POINTS = {
    ("dpo", 0): [(1.0, 0.1), (3.0, 0.3)],  # b = 1: 0.1; b = 2.5: 0.1 + 0.75 * 0.2 = 0.25
    ("dpo", 1): [(2.0, 0.2), (4.0, 0.2)],  # b = 1: 0.1 (from (0, 0)); b = 2.5: 0.2
    ("ti", 0): [(0.5, 0.2), (1.5, 0.4)],  # b = 1: 0.3; b = 2.5: not reached
    ("ti", 1): [(1.0, 0.0), (3.0, 0.5)],  # b = 1: 0.0; b = 2.5: 0.375
}


def _record(method, seed, step, kl, gain):
    stat = {"mean": gain, "low": gain - 0.1, "high": gain + 0.1}
    policy = {"distinct_2": 0.9, "self_bleu_4": None, "entropy": 2.0}
    record = {"method": method, "seed": seed, "step": step, "prompts": 2, "samples_per_prompt": 1}
    record.update(kl={"mean": kl, "low": kl, "high": kl}, gain=stat, reward=stat, win_rate=0.5, policy=policy)
    return {**record, "per_prompt": {"kl": [kl, kl], "gain": [gain, gain]}}


def _study(tmp_path, skip=()):
    spec = parse_spec({**GOOD, "bootstrap": 100})
    for run in plan(spec, tmp_path):
        for step, (kl, gain) in zip(spec.checkpoints, POINTS[run.method.name, run.seed], strict=True):
            if (run.name, step) in skip:
                continue
            path = eval_path(run, step)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(_record(run.method.name, run.seed, step, kl, gain)))
    return spec


def test_table_points_match_the_hand_values(tmp_path):
    report = build_report(_study(tmp_path), tmp_path)
    rows = {(r["method"], r["budget"]): r for r in report["table"]}
    assert rows["dpo", 1.0]["reward_gain"]["mean"] == pytest.approx(0.1)
    assert rows["dpo", 2.5]["reward_gain"]["mean"] == pytest.approx(0.225)
    assert rows["ti", 1.0]["reward_gain"]["mean"] == pytest.approx(0.15)
    assert rows["ti", 1.0]["difference"]["mean"] == pytest.approx(0.05) and rows["dpo", 1.0]["difference"] is None
    assert rows["ti", 2.5]["reward_gain"]["mean"] is None and rows["ti", 2.5]["seeds_reaching"] == 1
    assert report["seeds_in_table"] == [0, 1]
    dpo = next(m for m in report["methods"] if m["name"] == "dpo")
    # every point of both runs with (0, 0): the envelope's corners
    assert dpo["envelope"] == [[0.0, 0.0], [1.0, 0.1], [2.0, 0.2], [3.0, 0.3]]


def test_a_run_not_fully_evaluated_leaves_the_table_and_is_listed(tmp_path):
    report = build_report(_study(tmp_path, skip={("ti-s1", 4)}), tmp_path)
    assert report["seeds_in_table"] == [0]
    assert report["missing"] == ["ti-s1: not trained; steps [4] not evaluated"]
    ti = next(m for m in report["methods"] if m["name"] == "ti")
    assert [len(run["points"]) for run in ti["runs"]] == [3, 2]  # the plot still shows the evaluated point


def test_the_three_files(tmp_path):
    paths = write_report(_study(tmp_path), tmp_path)
    page = paths["markdown"].read_text()
    assert "not reached" in page and "| TI-DPO |" in page and "![reward against KL](frontier.png)" in page
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    assert json.loads(paths["json"].read_text())["budgets"] == [1.0, 2.5]


def test_the_table_can_be_limited_to_some_methods():
    """Two methods with seed 0, one of them also with seed 1: together the table has seed 0 only; limited to the
    method with both, seeds 0 and 1."""
    from tidpo.compare.report import table_members

    spec = parse_spec(GOOD)
    full = {step: {} for step in spec.checkpoints}
    evals = {("dpo", 0): full, ("ti", 0): full, ("ti", 1): full, ("dpo", 1): {spec.checkpoints[0]: {}}}
    assert table_members(spec, evals) == (["dpo", "ti"], [0])
    assert table_members(spec, evals, only=["ti"]) == (["ti"], [0, 1])


def test_plot_zoom_covers_the_budgets_and_the_gains_inside():
    from tidpo.compare.render import budget_region

    def run(*points):
        return {"points": [{"kl": kl, "gain": gain} for kl, gain in points]}

    report = {"budgets": [2, 4], "methods": [
        {"runs": [run((0.1, -0.02), (3.0, 0.30)), run((9.0, 0.90))]},  # 9 nats: outside 2 x 4, left out
        {"runs": [run((7.5, 0.50))]},
    ]}  # fmt: skip
    (kl_low, kl_high), (low, high) = budget_region(report)
    assert (kl_low, kl_high) == (0.0, 8.0)
    # gains inside: -0.02, 0.30, 0.50; span 0.52, padded by 0.026 on each side
    assert low == pytest.approx(-0.046) and high == pytest.approx(0.526)
    far = {"budgets": [1], "methods": [{"runs": [run((5.0, 0.4))]}]}
    assert budget_region(far) == ((0.0, 2.0), None)
