"""``benchmarks/gpu/run.sh --cpu OUTDIR`` (the GPU check's CPU mode, tiny model) runs every part, and each part
writes its JSON and its lines of summary.md: the prepared GPU command cannot rot unnoticed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PARTS = [
    "env",
    "equality_fp32",
    "speed",
    "route_cost",
    "compare",
    "train",
    "equality_bf16",
    "decode",
    "memory",
    "flash_attn",
]


def test_the_cpu_mode_runs_every_part_and_each_writes_its_output(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHON": sys.executable, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [str(ROOT / "benchmarks" / "gpu" / "run.sh"), "--cpu", str(out)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert [p["part"] for p in summary["parts"]] == PARTS, proc.stdout[-2000:]
    for part in summary["parts"]:
        log = (out / f"{part['part']}.log").read_text()[-1500:]
        assert part["rc"] == 0 and part["wrote"], (part, log)
        report = json.loads((out / f"{part['part']}.json").read_text())
        assert report.get("summary") or (out / f"{part['part']}.md").exists(), part["part"]
    assert proc.returncode == 0
    text = (out / "summary.md").read_text()
    assert all(f"## {name}" in text for name in PARTS)
    assert "| full TI-DPO / TRL DPO (vs trl_dpo) |" in text  # speed.py's ratios, from speed.md
    decode = json.loads((out / "decode.json").read_text())
    assert [r["route"] for r in decode["routes"]] == ["dynamic", "static"]
    assert all(r["equal_to_dynamic"] for r in decode["routes"]) and decode["generate"]["equal_to_dynamic"]
    fp32 = json.loads((out / "equality_fp32.json").read_text())
    assert fp32["counts"]["tests"] == 2 and fp32["counts"]["failures"] == 0
    train = json.loads((out / "train.json").read_text())
    assert [(r["profile"], r["steps_logged"], r["finite"]) for r in train["runs"]] == [("single_gpu", 3, True)]
    assert "anchor_decode=dynamic" in train["runs"][0]["routes"]
    compare = json.loads((out / "compare.json").read_text())  # tidpo compare --quick: 2 methods x 2 seeds
    assert compare["rc"] == 0 and len(compare["runs"]) == 4
    assert all(len(r["eval_s"]) == 2 and r["train_s"] > 0 for r in compare["runs"].values())
