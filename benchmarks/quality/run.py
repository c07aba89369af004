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
import datetime as dt
import json
import os
import random
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
SAMPLES = 4  # continuations per held-out opening and model
SAMPLE_SEED = 1234  # the demo's: the reference's samples are shared with it through the cache

METHODS: dict[str, dict] = {  # name -> TIDPOConfig overrides on top of the recipe (run in this order)
    "dpo": {"preset": "paper", "baseline": "dpo"},
    "tdpo2": {"preset": "paper", "baseline": "tdpo2"},
    "ti-dpo-paper": {"preset": "paper"},
    "ti-dpo-official": {"preset": "official"},
    "response-logp": {"preset": "paper", "attribution_target": "response_logp"},
    "uniform": {"preset": "paper", "importance": "uniform"},
    "gamma-0": {"preset": "paper", "triplet_weight": 0.0},
    "lexicon-columns": {"preset": "paper", "importance": "columns"},
    "random": {"preset": "paper", "importance": "random"},
    "prior-only": {"preset": "paper", "importance": "prior"},
    "gradient-only": {"preset": "paper", "importance": "gradient"},
}
LABELS = {
    "dpo": "DPO",
    "tdpo2": "TDPO2",
    "ti-dpo-paper": "TI-DPO, paper preset",
    "ti-dpo-official": "TI-DPO, official preset",
    "gamma-0": "TI-DPO paper, γ = 0",
    "uniform": "TI-DPO paper, uniform weights",
    "random": "TI-DPO paper, random weights",
    "prior-only": "TI-DPO paper, prior only (λ = 0)",
    "gradient-only": "TI-DPO paper, gradient only (λ = 1)",
    "lexicon-columns": "TI-DPO paper, lexicon weights from the data",
    "response-logp": "TI-DPO paper, response log-prob target (beyond the paper)",
}
NOISE_METHODS = ("dpo", "ti-dpo-paper")
NOISE_LEVELS = (0.2, 0.4)
HH_METHODS = ("dpo", "tdpo2", "ti-dpo-paper")
HH_RECIPE = {  # LoRA on dialogue: longer rows, so fewer pairs a step
    "max_length": 320,
    "per_device_train_batch_size": 4,
    "per_device_eval_batch_size": 8,
    "max_steps": 60,
    "learning_rate": 5e-4,
    "anchor_max_new_tokens": 32,
}
SEEDS = (0, 1, 2)
HH_SEEDS = (0, 1)


def run_list(experiments, seeds) -> list[dict]:
    """Every run, seed-major within each experiment."""
    runs = []
    for experiment in experiments:
        if experiment == "weights":
            runs.append({"experiment": "weights", "name": "untrained", "seed": 0})
            continue
        exp_seeds = [s for s in seeds if experiment != "hh" or s in HH_SEEDS]
        for seed in exp_seeds:
            if experiment == "sentiment":
                runs += [{"experiment": experiment, "method": m, "seed": seed, "name": f"{m}-s{seed}"} for m in METHODS]
            elif experiment == "noise":
                for f in NOISE_LEVELS:
                    runs += [{"experiment": experiment, "method": m, "seed": seed, "flip": f,
                              "name": f"{m}-flip{round(f * 100)}-s{seed}"} for m in NOISE_METHODS]  # fmt: skip
            elif experiment == "hh":
                runs += [
                    {"experiment": experiment, "method": m, "seed": seed, "name": f"{m}-s{seed}"} for m in HH_METHODS
                ]
    return runs


def result_path(results: Path, run: dict) -> Path:
    return results / run["experiment"] / f"{run['name']}.json"


def machine() -> dict:
    import platform

    import torch

    cpu = platform.processor()
    try:
        line = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name"))
        cpu = line.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "torch": torch.__version__}


def code_version() -> str:
    """The commit the run's code came from (``+dirty`` when the working tree had changes), or "unknown"."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True)  # fmt: skip
    except OSError:
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def recipe(quick: bool) -> dict:
    """The demo's training settings (demo.yaml without its method keys), or a 2-step one for ``--quick``."""
    import yaml

    from tidpo.resources import HERE as RESOURCES

    config = yaml.safe_load((RESOURCES / "demo.yaml").read_text())
    for key in ("preset",):
        config.pop(key, None)
    if quick:
        config.update(max_steps=2, per_device_train_batch_size=2, anchor_max_new_tokens=4, max_length=48)
    return config


def flip_pairs(dataset, fraction: float, seed: int):
    """Swap chosen and rejected in ``round(fraction · n)`` pairs drawn with ``seed``."""
    n = len(dataset)
    flipped = set(random.Random(seed).sample(range(n), round(fraction * n)))

    def swap(row, index):
        if index in flipped:
            return {**row, "chosen": row["rejected"], "rejected": row["chosen"]}
        return row

    return dataset.map(swap, with_indices=True), len(flipped)


def without_empty_responses(path):
    """The pairs of ``path`` whose every response turn has text (HH has a few empty assistant turns, which tidpo
    refuses: a response needs a token before its EOS), and how many were left out."""
    from tidpo import load_preference_data

    skipped: list[str] = []
    keep = load_preference_data(str(path), on_bad_row="skip", skipped=skipped)
    return keep, len(skipped)


def load_model(model_path: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return AutoModelForCausalLM.from_pretrained(model_path), tokenizer


def train_and_evaluate(run: dict, args) -> dict:
    """Train one run and evaluate it (held-out pairs; for the sentiment task also sampling)."""
    import torch
    from peft import LoraConfig

    from tidpo import TIDPOConfig, TIDPOTrainer, load_preference_data
    from tidpo.eval.generation import SamplingSettings, generation_report
    from tidpo.resources import builtin_dataset_path
    from tidpo.tasks.sentiment import lexicon_weight_columns, load_openings, reward

    torch.manual_seed(run["seed"])
    model, tokenizer = load_model(args.model_path)
    base = recipe(args.quick)
    lora = {k: base.pop(k) for k in ("use_lora", "lora_r", "lora_alpha", "lora_dropout")}
    info: dict = {}
    if run["experiment"] == "hh":
        train, info["dropped_empty"] = without_empty_responses(args.hh / "train.conversational.jsonl")
        test, info["dropped_empty_dev"] = without_empty_responses(args.hh / "dev.conversational.jsonl")
        base.update(HH_RECIPE)
        if args.quick:
            base.update(max_steps=2, per_device_train_batch_size=2, max_length=128, anchor_max_new_tokens=4)
            train, test = train.select(range(8)), test.select(range(4))
    else:
        train = load_preference_data(str(builtin_dataset_path("demo", "train")))
        test = load_preference_data(str(builtin_dataset_path("demo", "test")))
    info.update(train_pairs=len(train), test_pairs=len(test))
    if run.get("flip"):
        train, info["flipped"] = flip_pairs(train, run["flip"], run["seed"])
    overrides = dict(METHODS[run["method"]])
    if overrides.get("importance") == "columns":
        train = train.map(lexicon_weight_columns, fn_kwargs={"tokenizer": tokenizer})
    with tempfile.TemporaryDirectory(prefix="tidpo-quality-") as scratch:
        config = TIDPOConfig(
            output_dir=scratch, **{**base, "seed": run["seed"], "logging_steps": 1, "disable_tqdm": True},
            **overrides,
        )  # fmt: skip
        peft_config = LoraConfig(
            r=lora["lora_r"], lora_alpha=lora["lora_alpha"], lora_dropout=lora["lora_dropout"],
            target_modules="all-linear", task_type="CAUSAL_LM",
        )  # fmt: skip
        trainer = TIDPOTrainer(
            model=model, args=config, train_dataset=train, eval_dataset=test, processing_class=tokenizer,
            peft_config=peft_config,
        )  # fmt: skip
        start = time.perf_counter()
        trainer.train()
        info["train_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        metrics = trainer.evaluate()
        info["eval_seconds"] = time.perf_counter() - start
    history = [h for h in trainer.state.log_history if "loss" in h and "eval_loss" not in h]
    result = {
        **run,
        "label": LABELS[run["method"]],
        "settings": {**base, **overrides},
        "routes": str(trainer.routes),
        **info,
        "train_log": history,
        "heldout": {k.removeprefix("eval_"): v for k, v in metrics.items()},
    }
    if run["experiment"] != "hh":
        prompts = load_openings()[1]
        settings = SamplingSettings(max_new_tokens=4 if args.quick else 32)
        if args.quick:
            prompts = prompts[:3]
        start = time.perf_counter()
        policy = trainer.model
        report = generation_report(policy, tokenizer, prompts, reward, n=2 if args.quick else SAMPLES,
                                   settings=settings, seed=SAMPLE_SEED)  # fmt: skip
        info["generation_seconds"] = time.perf_counter() - start
        samples = report.pop("samples")
        result["generation"] = report
        result["examples"] = samples[:: max(1, len(samples) // 8)][:8]
    return result


def weights_run(args) -> dict:
    """Importance recovery of the untrained model's weights on the held-out pairs (experiment 4)."""
    from tidpo import load_preference_data
    from tidpo.eval.explain import explain_pairs
    from tidpo.eval.importance import importance_recovery
    from tidpo.resources import builtin_dataset_path
    from tidpo.tasks.sentiment import lexicon_token_relevance
    from tidpo.training.config import PRESETS

    model, tokenizer = load_model(args.model_path)
    data = load_preference_data(str(builtin_dataset_path("demo", "test")))
    n = 4 if args.quick else len(data)
    out = {}
    for preset in ("paper", "official"):
        p = PRESETS[preset]
        for target in ("max_logit", "response_logp"):
            explanation = explain_pairs(
                model, tokenizer, data, n, mix=p["importance_mix"], sigma_div=p["prior_sigma_div"],
                span=p["weight_span"], max_length=96, batch_size=8, name="test", target=target,
            )  # fmt: skip
            out[f"{preset}/{target}"] = importance_recovery(explanation, lexicon_token_relevance)
    return {"experiment": "weights", "name": "untrained", "pairs": n, "recovery": out}


def run_one(run: dict, args) -> None:
    """Run ``run`` in this process and write its JSON."""
    start = time.perf_counter()
    result = weights_run(args) if run["experiment"] == "weights" else train_and_evaluate(run, args)
    result.update(seconds=time.perf_counter() - start, date=dt.date.today().isoformat(), machine=machine(),
                  model=args.model, code=code_version())  # fmt: skip
    path = result_path(args.results, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def quick_model(folder: Path) -> str:
    """A tiny Llama and word-level tokenizer (the tests' kind) saved to ``folder``: ``--quick`` downloads nothing."""
    sys.path.insert(0, str(ROOT))
    from tests.tiny import make_model, make_tokenizer

    tokenizer = make_tokenizer()
    make_model(tokenizer, seed=0).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiments", default="weights,sentiment,noise,hh", help="comma-separated (default: all)")
    p.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="comma-separated seeds (0,1,2; hh uses 0,1)")
    p.add_argument("--methods", help="comma-separated methods of the sentiment experiment (default: all)")
    p.add_argument("--results", type=Path, help=f"where the JSON files go (default: {RESULTS.relative_to(ROOT)})")
    p.add_argument("--model", default=MODEL, help="built-in model name or folder")
    p.add_argument("--hh", type=Path, default=Path(os.environ.get("HH", HH_DEFAULT)),
                   help="folder of the HH harmless-base pairs (train/dev .conversational.jsonl; env HH)")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="tiny model, 2 steps, one seed, results in a temp folder")
    p.add_argument("--list", action="store_true", help="print the runs and whether each is done")
    p.add_argument("--one", help=argparse.SUPPRESS)  # a run's JSON: run it in this process (the driver's child)
    args = p.parse_args(argv)
    experiments = args.experiments.split(",")
    unknown = set(experiments) - {"weights", "sentiment", "noise", "hh"}
    if unknown:
        p.error(f"unknown experiments {sorted(unknown)}")
    if args.one:
        from tidpo.models import builtin_model_path

        args.model_path = str(builtin_model_path(args.model)) if not Path(args.model).is_dir() else args.model
        run_one(json.loads(args.one), args)
        return 0
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.quick:
        seeds = seeds[:1]
        args.results = args.results or Path(tempfile.mkdtemp(prefix="tidpo-quality-quick-"))
        args.model = quick_model(Path(tempfile.mkdtemp(prefix="tidpo-quality-tiny-model-")))
    args.results = args.results or RESULTS
    runs = run_list(experiments, seeds)
    if args.methods:
        keep = set(args.methods.split(","))
        runs = [r for r in runs if "method" not in r or r["method"] in keep]
    if "hh" in experiments and not (args.hh / "train.conversational.jsonl").is_file():
        print(f"skipping hh: {args.hh}/train.conversational.jsonl not found (pass --hh or set HH)")
        runs = [r for r in runs if r["experiment"] != "hh"]
    todo = [r for r in runs if not result_path(args.results, r).is_file()]
    if not todo and not args.list:
        print(f"all {len(runs)} runs are done (results in {args.results})")
    if args.list:
        for r in runs:
            print(f"{'done' if r not in todo else 'todo'}  {r['experiment']}/{r['name']}")
        print(f"{len(runs) - len(todo)} of {len(runs)} done")
        return 0
    failures = 0
    for i, run in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] {run['experiment']}/{run['name']}", flush=True)
        start = time.perf_counter()
        cmd = [sys.executable, __file__, "--one", json.dumps(run), "--results", str(args.results), "--model",
               args.model, "--hh", str(args.hh)] + (["--quick"] if args.quick else [])  # fmt: skip
        code = subprocess.call(cmd)
        if code != 0:
            failures += 1
            print(f"    FAILED (exit {code})", flush=True)
        else:
            print(f"    done in {time.perf_counter() - start:.0f} s -> {result_path(args.results, run)}", flush=True)
    if args.quick:
        print(f"quick results in {args.results}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
