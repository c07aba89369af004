"""``benchmarks/hh_real_data.py`` runs on the real model and HH pairs, checks that the shared prompt and
padding-free rows change no number, and writes its table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "hh_real_data.py"


@pytest.mark.smoke
def test_one_step_per_configuration_writes_the_table(tmp_path):
    pytest.importorskip("gguf")
    spec = importlib.util.spec_from_file_location("tidpo_hh_real_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    if not module.HH.is_file():
        pytest.skip(f"{module.HH} not found (../shared is laid beside the repository in CI)")
    md = tmp_path / "performance.md"
    argv = ["--steps", "1", "--pairs", "2", "--max_length", "128", "--markdown", str(md),
            "--scratch", str(tmp_path / "scratch")]  # fmt: skip
    assert module.main(argv) == 0
    page = md.read_text()
    assert "<!-- speed:hh-real-data -->" in page
    rows = [line for line in page.splitlines() if line.startswith("| ") and line.count("|") == 7][2:]
    assert len(rows) == len(module.CONFIGS)
    for row in rows:
        whole, shared, packed, *ratios = (float(cell) for cell in row.strip("|").split("|")[1:])
        for time, ratio in zip((shared, packed), ratios, strict=True):
            assert whole > 0 and time > 0
            # each cell is rounded to 0.01 on its own, so the printed ratio (taken before rounding) lies within
            # the range the rounded times allow, plus its own rounding
            low, high = (time - 0.005) / (whole + 0.005), (time + 0.005) / (whole - 0.005)
            assert low - 0.005 <= ratio <= high + 0.005
