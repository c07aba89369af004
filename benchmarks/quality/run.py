"""Quality experiments: does TI-DPO align better than DPO here? One JSON per run, resumable run by run.

Experiments (docs/results.md has the tables; ``benchmarks/quality/report.py`` builds them):

- ``sentiment``: SmolLM2-135M-Instruct with LoRA on the built-in sentiment pairs (``--dataset demo``), the demo's
  recipe (``tidpo/resources/demo.yaml``) with each method's settings on top; held-out reward gain over the
  reference with its interval, win rate, KL, diversity, held-out preference accuracy.
- ``noise``: the same with 20 % and 40 % of the training pairs flipped (chosen and rejected swapped), DPO against
  TI-DPO (the 0 % runs are the ``sentiment`` ones).
- ``hh``: real human preferences (Anthropic HH harmless-base, a local copy given by ``--hh``); dev preference
  accuracy and margin of DPO, TDPO2 and TI-DPO.
- ``weights``: where the weight goes: ROC AUC of the hybrid, gradient-only, prior-only and random weights at
  finding the tokens of words VADER's lexicon scores, and the EOS share, on the held-out pairs, for both
  attribution targets and both presets (the untrained model: the weights the first steps train with).

Each run writes ``<results>/<experiment>/<run>.json`` when it finishes (a temporary name, then renamed) and is
skipped when that file exists, so the driver can be stopped and started again. Runs go seed-major: every method's
first seed before any second seed.

    python benchmarks/quality/run.py                          # everything still missing
    python benchmarks/quality/run.py --experiments sentiment --seeds 0
    python benchmarks/quality/run.py --list                   # the runs and which are done
    python benchmarks/quality/run.py --quick                  # the pipeline on a tiny model (CI; results not kept)
    python benchmarks/quality/report.py                       # the tables and the plot
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = HERE / "results"
HH_DEFAULT = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless"
MODEL = "smollm2-135m-instruct"

sys.path.insert(0, str(HERE))
# the experiments' definitions and the per-run steps, importable from here as they always were
from experiments import (  # noqa: E402, F401
    HH_METHODS,
    HH_RECIPE,
    HH_SEEDS,
    LABELS,
    METHODS,
    NOISE_LEVELS,
    NOISE_METHODS,
    SEEDS,
    result_path,
    run_list,
)
from one_run import (  # noqa: E402, F401
    SAMPLE_SEED,
    SAMPLES,
    code_version,
    flip_pairs,
    load_model,
    machine,
    recipe,
    run_one,
    train_and_evaluate,
    weights_run,
    without_empty_responses,
)


def quick_model(folder: Path) -> str:
    """A tiny Llama and word-level tokenizer (the tests' kind) saved to ``folder``: ``--quick`` downloads nothing."""
    sys.path.insert(0, str(ROOT))
    from tests.tiny import make_model, make_tokenizer

    tokenizer = make_tokenizer()
    make_model(tokenizer, seed=0).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiments", default="weights,sentiment,noise,hh", help="comma-separated (default: all)")
    p.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="comma-separated seeds (0,1,2; hh uses 0,1)")
    p.add_argument("--methods", help="comma-separated methods of the sentiment experiment (default: all)")
    p.add_argument("--results", type=Path, help=f"where the JSON files go (default: {RESULTS.relative_to(ROOT)})")
    p.add_argument("--model", default=MODEL, help="built-in model name or folder")
    p.add_argument(
        "--hh",
        type=Path,
        default=Path(os.environ.get("HH", HH_DEFAULT)),
        help="folder of the HH harmless-base pairs (train/dev .conversational.jsonl; env HH)",
    )
    p.add_argument("--quick", action="store_true", help="tiny model, 2 steps, one seed, results in a temp folder")
    p.add_argument("--list", action="store_true", help="print the runs and whether each is done")
    p.add_argument("--one", help=argparse.SUPPRESS)  # a run's JSON: run it in this process (the driver's child)
    return p


def _run_child(args) -> int:
    """``--one``: the driver's child runs the one run it was given, in this process."""
    from tidpo.models import builtin_model_path

    args.model_path = str(builtin_model_path(args.model)) if not Path(args.model).is_dir() else args.model
    run_one(json.loads(args.one), args)
    return 0


def _selected_runs(args, experiments: list[str], seeds: list[int]) -> list[dict]:
    """The runs of ``experiments`` and ``seeds``, less the methods not asked for and HH when its data is missing."""
    runs = run_list(experiments, seeds)
    if args.methods:
        keep = set(args.methods.split(","))
        runs = [r for r in runs if "method" not in r or r["method"] in keep]
    if "hh" in experiments and not (args.hh / "train.conversational.jsonl").is_file():
        print(f"skipping hh: {args.hh}/train.conversational.jsonl not found (pass --hh or set HH)")
        runs = [r for r in runs if r["experiment"] != "hh"]
    return runs


def _print_list(runs: list[dict], todo: list[dict]) -> None:
    for r in runs:
        print(f"{'done' if r not in todo else 'todo'}  {r['experiment']}/{r['name']}")
    print(f"{len(runs) - len(todo)} of {len(runs)} done")


def _child_command(run: dict, args) -> list[str]:
    """This script again, running ``run`` alone (``--one``), so that each run starts from a fresh process."""
    command = [sys.executable, __file__, "--one", json.dumps(run), "--results", str(args.results)]
    command += ["--model", args.model, "--hh", str(args.hh)]
    return command + (["--quick"] if args.quick else [])


def _run_all(todo: list[dict], args) -> int:
    """Each run of ``todo`` in its own process, one after the other; the number that failed."""
    failures = 0
    for i, run in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] {run['experiment']}/{run['name']}", flush=True)
        start = time.perf_counter()
        code = subprocess.call(_child_command(run, args))
        if code != 0:
            failures += 1
            print(f"    FAILED (exit {code})", flush=True)
        else:
            print(f"    done in {time.perf_counter() - start:.0f} s -> {result_path(args.results, run)}", flush=True)
    return failures


def main(argv=None) -> int:
    p = make_parser()
    args = p.parse_args(argv)
    experiments = args.experiments.split(",")
    unknown = set(experiments) - {"weights", "sentiment", "noise", "hh"}
    if unknown:
        p.error(f"unknown experiments {sorted(unknown)}")
    if args.one:
        return _run_child(args)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.quick:
        seeds = seeds[:1]
        args.results = args.results or Path(tempfile.mkdtemp(prefix="tidpo-quality-quick-"))
        args.model = quick_model(Path(tempfile.mkdtemp(prefix="tidpo-quality-tiny-model-")))
    args.results = args.results or RESULTS
    runs = _selected_runs(args, experiments, seeds)
    todo = [r for r in runs if not result_path(args.results, r).is_file()]
    if not todo and not args.list:
        print(f"all {len(runs)} runs are done (results in {args.results})")
    if args.list:
        _print_list(runs, todo)
        return 0
    failures = _run_all(todo, args)
    if args.quick:
        print(f"quick results in {args.results}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
