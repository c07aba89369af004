"""Part ``train``: ``tidpo train`` for a few steps under accelerate profiles (single_gpu, fsdp2 and DDP at world
size 1, zero2/zero3 when DeepSpeed is installed): does it run, are its losses finite, what is each process's peak
memory (CUDA's max allocated, written at exit by a ``sitecustomize`` hook), and which routes did it log."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, Report, device, parser, qwen

HOOK = """import atexit, os, sys
def _tidpo_peak():
    torch = sys.modules.get("torch")
    if torch is None or not os.environ.get("TIDPO_PEAK_DIR"):
        return
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(os.path.join(os.environ["TIDPO_PEAK_DIR"], f"{os.getpid()}.mib"), "w") as f:
        f.write(f"{peak:.1f}")
atexit.register(_tidpo_peak)
"""
TRAIN = [
    "--max_steps",
    "3",
    "--per_device_train_batch_size",
    "2",
    "--max_length",
    "256",
    "--logging_steps",
    "1",
    "--save_strategy",
    "no",
    "--report_to",
    "none",
    "--triplet_weight",
    "0.1",
    "--anchor_max_new_tokens",
    "16",
    "--learning_rate",
    "1e-6",
    "--seed",
    "0",
]


def inputs(work: Path, cpu: bool) -> tuple[Path, Path]:
    import torch
    from speed import build_tokenizer, synthetic_pairs

    shape, dtype = ("tiny", torch.float32) if cpu else ("qwen2.5-0.5b", torch.bfloat16)
    model = qwen(shape, dtype, device(cpu), llama=True)
    folder = work / "model"
    model.save_pretrained(folder)
    build_tokenizer(model.config.vocab_size).save_pretrained(folder)
    data = work / "data.jsonl"
    pairs = synthetic_pairs(16, 48, 96, model.config.vocab_size, seed=1)
    data.write_text("".join(json.dumps(row) + "\n" for row in pairs))
    return folder, data


def run_one(profile: str, work: Path, model: Path, data: Path, cpu: bool, timeout: float) -> dict:
    peaks = work / f"peak-{profile}"
    peaks.mkdir(parents=True, exist_ok=True)
    out = work / f"out-{profile}"
    launch = [] if profile == "none" else ["--accelerate_config", profile]
    cmd = [
        sys.executable,
        "-m",
        "tidpo.cli.main",
        "train",
        *launch,
        "--model",
        str(model),
        "--dataset",
        str(data),
        "--output_dir",
        str(out),
        *TRAIN,
        *(["--use_cpu"] if cpu else []),
    ]
    env = {
        **os.environ,
        "TIDPO_PEAK_DIR": str(peaks),
        "PYTHONPATH": f"{work / 'hook'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        rc, log = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:
        rc, log = "timeout", (err.stdout or b"").decode(errors="replace") + (err.stderr or b"").decode(errors="replace")
    metrics = out / "metrics.jsonl"
    losses = [json.loads(x).get("loss") for x in metrics.read_text().splitlines()] if metrics.exists() else []
    losses = [x for x in losses if x is not None]
    routes = next((ln.split("routes:", 1)[1].strip() for ln in log.splitlines() if ln.startswith("routes:")), "")
    return {
        "profile": profile,
        "rc": rc,
        "seconds": round(time.monotonic() - start, 1),
        "steps_logged": len(losses),
        "finite": bool(losses) and all(math.isfinite(x) for x in losses),
        "losses": losses,
        "peak_mib": [float(p.read_text()) for p in sorted(peaks.glob("*.mib"))],
        "routes": routes,
        "log_tail": log.strip().splitlines()[-8:],
    }


# the engines no GPU run has finished first: single_gpu passed on both H200 runs of 2026-12-04, while fsdp2 was cut
# by the budget and multi_gpu never started
ORDER = ("fsdp2", "multi_gpu", "single_gpu")


def profiles(cpu: bool) -> tuple[list[str], dict[str, str]]:
    if cpu:
        return ["single_gpu"], {"fsdp2": "accelerate runs FSDP only on accelerators (CPU mode)"}
    try:
        import deepspeed  # noqa: F401

        return [*ORDER, "zero2", "zero3"], {}
    except ImportError:
        return list(ORDER), {z: "DeepSpeed is not installed (no wheel)" for z in ("zero2", "zero3")}


def main() -> int:
    args = parser(__doc__).parse_args()
    import tempfile

    deadline = time.monotonic() + float(os.environ.get("TIDPO_PART_BUDGET", "70"))
    work = Path(tempfile.mkdtemp(prefix="tidpo-gpu-train-"))
    (work / "hook").mkdir()
    (work / "hook" / "sitecustomize.py").write_text(HOOK)
    model, data = inputs(work, args.cpu)
    run, skipped = profiles(args.cpu)
    report = Report(args.out, "train", args=TRAIN, skipped=skipped, runs=[])
    runs = []
    for profile in run:
        left = deadline - time.monotonic()
        if left < 10:
            skipped[profile] = "no time left in the part's budget"
            continue
        runs.append(run_one(profile, work, model, data, args.cpu, left))
        report["runs"], report["skipped"] = runs, skipped
    report.line("`tidpo train` (3 steps, 2 pairs, max_length 256, γ = 0.1, 16-token anchors, full fine-tuning):")
    report.line("")
    report.line("| profile | exit | s | steps | finite | peak MiB per process | routes |")
    report.line("| --- | --- | --- | --- | --- | --- | --- |")
    for r in runs:
        report.line(
            f"| {r['profile']} | {r['rc']} | {r['seconds']} | {r['steps_logged']} | {r['finite']} | "
            f"{', '.join(f'{p:.0f}' for p in r['peak_mib'])} | {r['routes']} |"
        )
    for name, why in skipped.items():
        report.line(f"| {name} | not run: {why} | | | | | |")
    return 0 if runs and all(r["rc"] == 0 and r["finite"] for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
