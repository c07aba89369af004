"""One run of the quality experiments, in this process (the driver's child, ``run.py --one``): train and evaluate a
method (held-out pairs; for the sentiment task also sampling), or score the untrained model's weights, then write
the run's JSON with where it ran and from which code."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path

from experiments import HH_RECIPE, LABELS, METHODS, result_path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = 4  # continuations per held-out opening and model
SAMPLE_SEED = 1234  # the demo's: the reference's samples are shared with it through the cache


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
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        )
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


def _pairs(run: dict, args, base: dict, info: dict):
    """The run's training and held-out pairs (HH's, with its recipe put into ``base``; else the demo's), flipped
    as the run asks; what was dropped, counted and flipped goes into ``info``."""
    from tidpo import load_preference_data
    from tidpo.resources import builtin_dataset_path

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
    return train, test


def _fit(model, tokenizer, train, test, settings: dict, overrides: dict, lora: dict, info: dict):
    """Train with LoRA in a scratch folder (the recipe's ``settings``, the method's ``overrides``), then evaluate on
    ``test``; the seconds of each go into ``info``."""
    from peft import LoraConfig

    from tidpo import TIDPOConfig, TIDPOTrainer

    with tempfile.TemporaryDirectory(prefix="tidpo-quality-") as scratch:
        config = TIDPOConfig(output_dir=scratch, **settings, **overrides)
        peft_config = LoraConfig(
            r=lora["lora_r"],
            lora_alpha=lora["lora_alpha"],
            lora_dropout=lora["lora_dropout"],
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
        trainer = TIDPOTrainer(
            model=model,
            args=config,
            train_dataset=train,
            eval_dataset=test,
            processing_class=tokenizer,
            peft_config=peft_config,
        )
        start = time.perf_counter()
        trainer.train()
        info["train_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        metrics = trainer.evaluate()
        info["eval_seconds"] = time.perf_counter() - start
    return trainer, metrics


def _sample(policy, tokenizer, quick: bool, info: dict) -> tuple[dict, list]:
    """Continuations of the held-out sentiment openings, scored: the report and its samples."""
    from tidpo.eval.generation import SamplingSettings, generation_report
    from tidpo.tasks.sentiment import load_openings, reward

    prompts = load_openings()[1]
    settings = SamplingSettings(max_new_tokens=4 if quick else 32)
    if quick:
        prompts = prompts[:3]
    start = time.perf_counter()
    report = generation_report(
        policy, tokenizer, prompts, reward, n=2 if quick else SAMPLES, settings=settings, seed=SAMPLE_SEED
    )
    info["generation_seconds"] = time.perf_counter() - start
    samples = report.pop("samples")
    return report, samples


def train_and_evaluate(run: dict, args) -> dict:
    """Train one run and evaluate it (held-out pairs; for the sentiment task also sampling)."""
    import torch

    from tidpo.tasks.sentiment import lexicon_weight_columns

    torch.manual_seed(run["seed"])
    model, tokenizer = load_model(args.model_path)
    base = recipe(args.quick)
    lora = {k: base.pop(k) for k in ("use_lora", "lora_r", "lora_alpha", "lora_dropout")}
    info: dict = {}
    train, test = _pairs(run, args, base, info)
    overrides = dict(METHODS[run["method"]])
    if overrides.get("importance") == "columns":
        train = train.map(lexicon_weight_columns, fn_kwargs={"tokenizer": tokenizer})
    settings = {**base, "seed": run["seed"], "logging_steps": 1, "disable_tqdm": True}
    trainer, metrics = _fit(model, tokenizer, train, test, settings, overrides, lora, info)
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
        # info was spread into result above, so the generation's seconds do not reach the JSON (as before)
        result["generation"], samples = _sample(trainer.model, tokenizer, args.quick, info)
        result["examples"] = samples[:: max(1, len(samples) // 8)][:8]
    return result


def weights_run(args) -> dict:
    """Importance recovery of the untrained model's weights on the held-out pairs (experiment 4)."""
    from tidpo import load_preference_data
    from tidpo.eval.explain import explain_pairs
    from tidpo.eval.importance import CONFIDENCE_WEIGHTINGS, importance_recovery
    from tidpo.resources import builtin_dataset_path
    from tidpo.tasks.sentiment import lexicon_token_relevance
    from tidpo.training.config import PRESETS

    model, tokenizer = load_model(args.model_path)
    data = load_preference_data(str(builtin_dataset_path("demo", "test")))
    n = 4 if args.quick else len(data)
    out = {}
    for preset in ("paper", "official"):
        p = PRESETS[preset]
        for target in ("max_logit", "response_logp", "max_logit_before_eos"):
            explanation = explain_pairs(
                model,
                tokenizer,
                data,
                n,
                mix=p["importance_mix"],
                sigma_div=p["prior_sigma_div"],
                span=p["weight_span"],
                max_length=96,
                batch_size=8,
                name="test",
                target=target,
            )
            out[f"{preset}/{target}"] = importance_recovery(explanation, lexicon_token_relevance)
        # the confidence estimator reads the same log-probs whatever the target (no attribution)
        out[f"{preset}/confidence"] = importance_recovery(
            explanation, lexicon_token_relevance, weightings=CONFIDENCE_WEIGHTINGS
        )
    return {"experiment": "weights", "name": "untrained", "pairs": n, "recovery": out}


def run_one(run: dict, args) -> None:
    """Run ``run`` in this process and write its JSON."""
    start = time.perf_counter()
    result = weights_run(args) if run["experiment"] == "weights" else train_and_evaluate(run, args)
    result.update(
        seconds=time.perf_counter() - start,
        date=dt.date.today().isoformat(),
        machine=machine(),
        model=args.model,
        code=code_version(),
    )
    path = result_path(args.results, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
