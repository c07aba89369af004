"""Frontier points: each saved checkpoint of a run, sampled on the study's prompts and scored against the reference.

Each checkpoint gives one JSON file, ``<run>/eval/checkpoint-<step>.json``, written atomically and skipped when
present. It holds the summary of :func:`tidpo.eval.generation.generation_report` (mean reward with its interval,
the paired gain over the reference, the win rate, KL(policy ‖ reference) from the policy's samples, diversity) and,
for the report's bootstrap, the *per-prompt* means over the prompt's samples of the policy's reward, the
reference's reward, the paired gain and the KL. The reference's samples depend only on the reference, the prompts
and the sampling settings, so :mod:`tidpo.eval.generation` caches them: they are drawn once for the whole study.
The step-0 point is the reference itself (gain 0, KL 0) and has no file.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from tidpo.compare.runs import Run, provenance
from tidpo.compare.spec import CompareSpec
from tidpo.files import write_text

EXAMPLES = 6  # samples kept in each file, to read


def eval_path(run: Run, step: int) -> Path:
    return run.folder / "eval" / f"checkpoint-{step}.json"


def read_eval(run: Run, step: int) -> dict | None:
    """The evaluation of ``run`` at ``step``, or None when it has not been made."""
    path = eval_path(run, step)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


@dataclass
class EvalContext:
    """What every evaluation of a study shares: the prompts, the reward, the sampling settings, the base model."""

    spec: CompareSpec
    model_path: str
    prompts: list[str]
    reward_fn: object
    reference: object = None  # the base model, loaded once, for runs that trained every weight
    device: str = field(default="cpu")


def make_context(spec: CompareSpec, model_path: str) -> EvalContext:
    """Load the prompts and the reward; pick the device the trainer would (a GPU unless the recipe says use_cpu)."""
    import torch

    from tidpo.cli.prompts import load_prompts
    from tidpo.eval.generation import load_reward_fn

    use_gpu = torch.cuda.is_available() and not spec.recipe.get("use_cpu", False)
    return EvalContext(
        spec, model_path, load_prompts(spec.prompts), load_reward_fn(spec.reward), device="cuda" if use_gpu else "cpu"
    )


def per_prompt(values: list[float], n: int) -> list[float]:
    """Means over consecutive groups of ``n`` (the samples are prompt-major: ``n`` for prompt 0, then prompt 1...)."""
    return [sum(values[i : i + n]) / n for i in range(0, len(values), n)]


def _reference_for(context: EvalContext, policy):
    """None for a LoRA policy (its adapters off are the reference), else the base model, loaded once."""
    if hasattr(policy, "disable_adapter"):
        return None
    if context.reference is None:
        from tidpo.cli.common import load_causal_lm

        context.reference = load_causal_lm(context.model_path)[0].to(context.device)
    return context.reference


def record_of(report: dict, n: int) -> dict:
    """The file's content from a generation report: the summary and the per-prompt means."""
    samples = report.pop("samples")
    policy = [s["policy_reward"] for s in samples]
    reference = [s["reference_reward"] for s in samples]
    per = {
        "reward": per_prompt(policy, n),
        "reference_reward": per_prompt(reference, n),
        "gain": per_prompt([p - r for p, r in zip(policy, reference, strict=True)], n),
        "kl": per_prompt([s["kl"] for s in samples], n),
    }
    return {
        "prompts": report["prompts"],
        "samples_per_prompt": n,
        "reward": report["policy"]["reward"],
        "reference_reward": report["reference"]["reward"],
        "gain": report["reward_difference"],
        "win_rate": report["win_rate"],
        "kl": report["kl"],
        "kl_unbiased": report["kl_unbiased"],
        "policy": {k: v for k, v in report["policy"].items() if k != "reward"},
        "reference": {k: v for k, v in report["reference"].items() if k != "reward"},
        "sampling": report["sampling"],
        "sample_seed": report["seed"],
        "reference_samples_cached": report["reference_samples_cached"],
        "per_prompt": per,
        "examples": samples[:: max(1, len(samples) // EXAMPLES)][:EXAMPLES],
    }


def evaluate_checkpoint(context: EvalContext, run: Run, step: int) -> dict:
    """Sample the checkpoint at ``step`` and the reference, score both, and write the file."""
    from tidpo.cli.common import load_causal_lm
    from tidpo.eval.generation import generation_report

    spec = context.spec
    start = time.perf_counter()
    policy, tokenizer = load_causal_lm(str(run.checkpoint(step)))
    policy.to(context.device)
    report = generation_report(
        policy,
        tokenizer,
        context.prompts,
        context.reward_fn,
        n=spec.samples,
        settings=spec.sampling(),
        seed=spec.sample_seed,
        reference=_reference_for(context, policy),
    )
    record = {"method": run.method.name, "seed": run.seed, "step": step, **record_of(report, spec.samples)}
    record.update(prompts_source=spec.prompts, reward_function=spec.reward)
    record.update(seconds=time.perf_counter() - start, **provenance())
    path = eval_path(run, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    return record


def evaluate_run(context: EvalContext, run: Run) -> list[dict]:
    """Every checkpoint of ``run`` not evaluated yet; returns the records made now."""
    return [
        evaluate_checkpoint(context, run, step) for step in context.spec.checkpoints if read_eval(run, step) is None
    ]
