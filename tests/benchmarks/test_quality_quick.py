"""``benchmarks/quality/run.py --quick``: the pipeline of the quality experiments on a tiny model (not the results).

Each run writes its JSON once; a second call finds them and runs nothing; the report builds its tables and plot.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

QUALITY = Path(__file__).resolve().parents[2] / "benchmarks" / "quality"


def _load(name: str):
    sys.path.insert(0, str(QUALITY))
    spec = importlib.util.spec_from_file_location(f"tidpo_quality_{name}", QUALITY / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_quick_runs_write_one_json_each_resume_and_report(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TIDPO_CACHE", str(tmp_path / "cache"))
    run, report = _load("run"), _load("report")
    results = tmp_path / "results"
    argv = ["--quick", "--results", str(results), "--experiments", "weights,sentiment,noise",
            "--methods", "dpo,ti-dpo-paper,lexicon-columns"]  # fmt: skip
    assert run.main(argv) == 0
    files = sorted(p.relative_to(results).as_posix() for p in results.glob("*/*.json"))
    assert files == [
        "noise/dpo-flip20-s0.json", "noise/dpo-flip40-s0.json", "noise/ti-dpo-paper-flip20-s0.json",
        "noise/ti-dpo-paper-flip40-s0.json", "sentiment/dpo-s0.json", "sentiment/lexicon-columns-s0.json",
        "sentiment/ti-dpo-paper-s0.json", "weights/untrained.json",
    ]  # fmt: skip
    dpo = json.loads((results / "sentiment" / "dpo-s0.json").read_text())
    gen = dpo["generation"]
    assert gen["reward_difference"]["low"] <= gen["reward_difference"]["mean"] <= gen["reward_difference"]["high"]
    assert 0 <= dpo["heldout"]["rewards/accuracies"] <= 1 and dpo["seconds"] > 0 and dpo["machine"]["cores"] >= 1
    flipped = json.loads((results / "noise" / "dpo-flip40-s0.json").read_text())
    assert flipped["flipped"] == round(0.4 * flipped["train_pairs"])
    lexicon = json.loads((results / "sentiment" / "lexicon-columns-s0.json").read_text())
    assert lexicon["settings"]["importance"] == "columns" and lexicon["routes"].count("attribution=none") == 1
    capsys.readouterr()
    assert run.main(argv) == 0  # resumable: everything is there, nothing runs again
    assert "all 8 runs are done" in capsys.readouterr().out
    page, plot = tmp_path / "results.md", tmp_path / "plot.png"
    page.write_text("# Results\n\nprose kept\n")
    assert report.main(["--results", str(results), "--page", str(page), "--plot", str(plot)]) == 0
    text = page.read_text()
    assert "prose kept" in text and "<!-- quality:sentiment -->" in text and "<!-- quality:weights -->" in text
    assert "| DPO | 1 |" in text and "69.3 / 64.8 / 60.1" in text and plot.stat().st_size > 1000
