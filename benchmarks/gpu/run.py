"""Runs every part of the GPU check, each in its own process and time budget, and writes OUTDIR/summary.md.

Called by ``benchmarks/gpu/run.sh``. A part is a command; it writes ``OUTDIR/<part>.json`` (and its output goes to
``OUTDIR/<part>.log``). One part failing, or running out of its budget, does not stop the others; the whole run
stays under :data:`TOTAL_S` on a GPU. ``--cpu`` runs the same parts on a tiny model on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TOTAL_S = 540  # the whole GPU run: parts past it are cut short (the first ones matter most)
# pytest files of the fast routes' equality tests: route matrix, chunked head, shared prompt, packed rows, fused
# attribution, anchors' decode against generate
EQUALITY_TESTS = [
    "tests/training/test_route_matrix.py",
    "tests/lm_head/test_chunked_head.py",
    "tests/training/test_chunked_logits.py",
    "tests/training/test_shared_prompt.py",
    "tests/training/test_padding_free.py",
    "tests/importance/test_attribution.py",
    "tests/training/test_anchor.py",
    "tests/training/test_anchor_decode.py",
]
# on the CPU the part only has to start and report: the decode against generate, sampled and greedy
CPU_EQUALITY = ["tests/training/test_anchor.py", "-k", "cache_equals_generate"]


@dataclass(frozen=True)
class Part:
    name: str
    budget_s: int  # on a GPU; the CPU mode gives every part CPU_BUDGET_S
    what: str


PARTS = [  # budgets from the H200 runs of 2026-12-04: imports alone took over 15 s on a cold machine; speed needed
    # > 130 s for its six configurations, equality_bf16 > 35 s for its 30 combinations
    Part("env", 30, "the card, the driver, the packages in use"),
    Part("equality_fp32", 70, "the fast routes' equality tests (pytest) on the device, float32"),
    Part("speed", 160, "benchmarks/speed.py against TRL's DPOTrainer (the sequence-length sweep: speed.py --sweep)"),
    Part("route_cost", 80, "tidpo's DPO step with each fast route off in turn, against TRL's; one step profiled"),
    Part("compare", 90, "tidpo compare on the frontier study's file (random SmolLM2-135M weights): minutes per run"),
    Part("train", 110, "tidpo train under accelerate profiles: runs, finite, peak memory"),
    Part("equality_bf16", 45, "every route combination against the naive route in bf16, tolerances stated"),
    Part("decode", 30, "the anchors' decode routes: seconds per draw, tokens equal to generate"),
    Part("memory", 45, "peak memory of full and LoRA TI-DPO by model size"),
    Part("flash_attn", 10, "packed rows with FlashAttention-2 against padded rows, if flash_attn is installed"),
]
CPU_BUDGET_S = 240


def command(part: str, out: Path, cpu: bool) -> list[str]:
    py, mode = sys.executable, ["--cpu"] if cpu else []
    if part == "speed":
        common = [
            "--json",
            str(out / "speed.json"),
            "--markdown",
            str(out / "speed.md"),
            "--scratch",
            "/tmp/tidpo-gpu-speed",
        ]
        shape = (
            ["--quick", "--configs", "trl_dpo,tidpo_dpo,tidpo_ti_dpo_full", "--sweep", "32", "--sweep_steps", "1"]
            if cpu
            else ["--sweep", ""]
        )
        return [py, str(ROOT / "benchmarks" / "speed.py"), *shape, *common]
    if part == "equality_fp32":
        tests = CPU_EQUALITY if cpu else EQUALITY_TESTS
        device = ["--device", "cpu" if cpu else "cuda"]
        return [py, str(HERE / "equality.py"), "pytest", *mode, "--out", str(out), "--", *device, *tests]
    script = {
        "env": "env_info.py",
        "decode": "decode.py",
        "route_cost": "route_cost.py",
        "equality_bf16": "equality.py",
        "train": "engines.py",
        "compare": "study.py",
        "memory": "memory.py",
        "flash_attn": "fa2.py",
    }[part]
    sub = ["bf16"] if part == "equality_bf16" else []
    return [py, str(HERE / script), *sub, *mode, "--out", str(out)]


def run_part(part: Part, out: Path, cpu: bool, deadline: float) -> dict:
    budget = CPU_BUDGET_S if cpu else min(part.budget_s, max(5, int(deadline - time.monotonic())))
    start = time.monotonic()
    print(f"[gpu] {part.name}: {part.what} (budget {budget} s)", flush=True)
    with open(out / f"{part.name}.log", "w") as log:
        try:
            env = {**os.environ, "TIDPO_PART_BUDGET": str(max(5, budget - 5))}  # a part may pace itself
            rc = subprocess.run(
                command(part.name, out, cpu), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env, timeout=budget
            ).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    seconds = time.monotonic() - start
    result = out / f"{part.name}.json"
    status = {"part": part.name, "rc": rc, "seconds": round(seconds, 1), "budget_s": budget, "wrote": result.exists()}
    print(f"[gpu] {part.name}: rc={rc}, {seconds:.0f} s, wrote {result.name}: {result.exists()}", flush=True)
    return status


def part_summary(out: Path, name: str) -> str:
    """The part's own Markdown lines (``summary`` in its JSON, or ``<part>.md``), or the tail of its log."""
    path = out / f"{name}.json"
    if path.exists():
        try:
            lines = json.loads(path.read_text()).get("summary")
        except json.JSONDecodeError as err:
            lines = [f"(its JSON does not parse: {err})"]
        if lines:
            return "\n".join(lines)
    markdown = out / f"{name}.md"  # speed.py writes its tables as Markdown
    if markdown.exists():
        return markdown.read_text()
    log = (out / f"{name}.log").read_text(errors="replace").strip().splitlines()
    return "```\n" + "\n".join(log[-15:]) + "\n```"


def write_summary(out: Path, statuses: list[dict], cpu: bool, total: float) -> str:
    env = json.loads((out / "env.json").read_text()) if (out / "env.json").exists() else {}
    lines = [
        f"# tidpo GPU check ({'CPU mode, tiny model' if cpu else env.get('device_name', 'device unknown')})",
        "",
        f"{env.get('line', '')} Total {total:.0f} s.",
        "",
        "| part | exit | seconds (budget) | wrote its JSON |",
        "| --- | --- | --- | --- |",
    ]
    for s in statuses:
        lines.append(
            f"| {s['part']} | {s['rc']} | {s['seconds']} ({s['budget_s']}) | {'yes' if s['wrote'] else 'NO'} |"
        )
    for s in statuses:
        lines += ["", f"## {s['part']}", "", part_summary(out, s["part"])]
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    (out / "summary.json").write_text(json.dumps({"cpu": cpu, "total_s": total, "parts": statuses}, indent=2))
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cpu", action="store_true", help="tiny model on the CPU: checks that every part runs")
    p.add_argument("--parts", default=",".join(x.name for x in PARTS), help="comma-separated subset")
    p.add_argument("outdir", type=Path)
    args = p.parse_args(argv)
    out = args.outdir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    chosen = [x for x in PARTS if x.name in args.parts.split(",")]
    start = time.monotonic()
    statuses = [run_part(x, out, args.cpu, start + TOTAL_S) for x in chosen]
    print(write_summary(out, statuses, args.cpu, time.monotonic() - start))
    return 0 if all(s["rc"] == 0 and s["wrote"] for s in statuses) else 1


if __name__ == "__main__":
    raise SystemExit(main())
