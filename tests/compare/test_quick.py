"""``tidpo compare --quick`` end to end on the tiny model: the report's files with finite numbers; a second call
trains and evaluates nothing; a run killed after its first checkpoint resumes from it; --list and --report."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from tidpo.cli.main import main


def _finite_numbers(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _finite_numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _finite_numbers(item)
    elif isinstance(value, float):
        yield value


def _refuse(*args, **kwargs):
    raise AssertionError("nothing should be trained or evaluated again")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare-quick")
    mp = pytest.MonkeyPatch()
    mp.setenv("TIDPO_CACHE", str(out / "cache"))
    assert main(["compare", "--quick", "--output", str(out / "study")]) == 0
    yield out / "study", mp
    mp.undo()


def test_quick_writes_the_report_with_finite_numbers(quick):
    out, _ = quick
    report = json.loads((out / "report.json").read_text())
    assert (out / "frontier.png").stat().st_size > 1000 and "# Reward against KL" in (out / "report.md").read_text()
    assert all(math.isfinite(x) for x in _finite_numbers(report))
    assert report["seeds_in_table"] == [0, 1] and len(report["table"]) == 2 * 2
    assert {m["name"] for m in report["methods"]} == {"dpo", "ti-dpo"} and report["missing"] == []
    record = json.loads((out / "runs" / "ti-dpo-s1" / "eval" / "checkpoint-2.json").read_text())
    assert len(record["per_prompt"]["gain"]) == record["prompts"] == 48
    assert record["reference_samples_cached"]  # drawn once, by the study's first evaluation


def test_a_second_call_trains_and_evaluates_nothing(quick, capsys, monkeypatch):
    out, _ = quick
    monkeypatch.setattr("tidpo.compare.runs.train_run", _refuse)
    monkeypatch.setattr("tidpo.compare.evaluate.evaluate_checkpoint", _refuse)
    assert main(["compare", "--quick", "--output", str(out)]) == 0
    assert main(["compare", "--quick", "--output", str(out), "--list"]) == 0
    assert capsys.readouterr().out.count("done  ") == 4


def test_a_run_killed_after_its_first_checkpoint_resumes_from_it(quick):
    out, _ = quick
    run = out / "runs" / "dpo-s0"
    kept = (run / "eval" / "checkpoint-1.json").read_text()
    (run / "compare_run.json").unlink()
    shutil.rmtree(run / "checkpoint-2")
    (run / "eval" / "checkpoint-2.json").unlink()
    assert main(["compare", "--quick", "--output", str(out), "--methods", "dpo", "--seeds", "0"]) == 0
    marker = json.loads((run / "compare_run.json").read_text())
    assert marker["resumed_from"].endswith("checkpoint-1")
    assert (run / "eval" / "checkpoint-1.json").read_text() == kept and (run / "eval" / "checkpoint-2.json").is_file()


def test_report_rebuilds_from_the_files_only(quick, monkeypatch):
    out, _ = quick
    (out / "report.md").unlink()
    monkeypatch.setattr("tidpo.compare.runs.train_run", _refuse)
    monkeypatch.setattr("tidpo.compare.evaluate.evaluate_checkpoint", _refuse)
    assert main(["compare", "--quick", "--output", str(out), "--report"]) == 0
    assert (out / "report.md").is_file()


def test_a_study_file_or_quick_is_needed(capsys):
    assert main(["compare"]) == 2
    assert "give a study file or --quick" in capsys.readouterr().err
