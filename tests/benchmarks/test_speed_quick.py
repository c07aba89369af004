"""``benchmarks/speed.py --quick`` runs every configuration (TRL included) and reports every ratio."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "speed.py"


def _load():
    spec = importlib.util.spec_from_file_location("tidpo_speed_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def test_quick_mode_times_every_configuration_and_writes_json_and_markdown(tmp_path):
    speed = _load()
    out, md = tmp_path / "speed.json", tmp_path / "performance.md"
    argv = ["--quick", "--json", str(out), "--markdown", str(md), "--scratch", str(tmp_path / "scratch"),
            "--sweep", "16"]  # fmt: skip
    assert speed.main(argv) == 0
    report = json.loads(out.read_text())
    assert [r["name"] for r in report["results"]] == list(speed.CONFIGS)
    for r in report["results"]:
        assert r["step_s"] > 0 and len(r["step_times"]) == 1 and r["tokens_per_s"] > 0, r["name"]
    assert len(report["ratios"]) == len(speed.RATIOS)
    assert [r["name"] for r in report["sweep"]] == list(speed.SWEEP)
    full = next(r for r in report["results"] if r["name"] == "tidpo_ti_dpo_full")
    assert full["extra"]["time/anchor_sampling"] > 0  # the anchors really were sampled
    page = md.read_text()
    assert "<!-- speed:cpu -->" in page and "| tidpo_dpo |" in page
    speed.write_markdown(md, "cpu", "replaced\n")  # a rerun replaces its own section and keeps the others
    page = md.read_text()
    assert page.count("<!-- speed:cpu -->") == 1 and "replaced" in page and "<!-- speed:cpu-sweep -->" in page


def test_a_label_names_its_own_sections_and_the_allocator_settings_are_recorded(monkeypatch):
    speed = _load()
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1073741824")
    result = speed.Result("tidpo_dpo", 8, 24, 1.0, [1.0], 66.0, 10.0)
    report = {
        "command": "python benchmarks/speed.py --label tuned", "date": "2026-11-29", "device": "cpu",
        "label": "tuned", "machine": speed.machine(), "results": [speed.asdict(result)], "ratios": [],
        "sweep": [speed.asdict(result)],
        "settings": {"shape": "tiny", "dtype": "float32", "pairs": 2, "prompt_len": 8, "response_len": 24,
                     "warmup": 1, "steps": 1, "sweep_steps": 1},
    }  # fmt: skip
    sections = speed.markdown_sections(report)
    assert set(sections) == {"cpu-tuned", "cpu-tuned-sweep"}
    assert sections["cpu-tuned"].startswith("### CPU (tuned):")
    assert "`MALLOC_MMAP_THRESHOLD_=1073741824 python benchmarks/speed.py --label tuned`" in sections["cpu-tuned"]


def test_a_run_cut_short_keeps_the_configurations_it_measured(tmp_path, monkeypatch):
    """The first GPU check's speed part ran out of time in the sweep and left no JSON: each measurement is saved
    as it comes."""
    speed = _load()
    done = []

    def fake_run(name, *args):
        if done:
            raise RuntimeError("out of time")
        done.append(name)
        return speed.Result(name, 8, 24, 0.5, [0.5], 66.0, 12.0)

    monkeypatch.setattr(speed, "run_config", fake_run)
    out = tmp_path / "speed.json"
    argv = ["--quick", "--configs", "trl_dpo,tidpo_dpo", "--json", str(out), "--scratch", str(tmp_path / "s")]
    with pytest.raises(RuntimeError, match="out of time"):
        speed.main(argv)
    report = json.loads(out.read_text())
    assert [(r["name"], r["step_s"]) for r in report["results"]] == [("trl_dpo", 0.5)]
