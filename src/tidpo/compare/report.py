"""The study's report from the evaluation files that exist: ``report.json``, ``report.md`` and ``frontier.png`` in
the output folder (docs/compare.md defines every number).

The table takes the methods that have at least one fully evaluated run and the seeds that every one of them has
fully evaluated (so that each bootstrap replicate pairs a method's run with the baseline's run of the same seed);
the plot shows every evaluated checkpoint, finished or not.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from tidpo.compare import frontier
from tidpo.compare.evaluate import read_eval
from tidpo.compare.runs import plan, provenance
from tidpo.compare.spec import CompareSpec
from tidpo.files import replacing, write_text

CONFIDENCE = 0.95


def collect(spec: CompareSpec, output: Path) -> dict[tuple[str, int], dict[int, dict]]:
    """Every evaluation file of the study: ``(method, seed) -> {step: record}``."""
    found = {}
    for run in plan(spec, output):
        records = {step: read_eval(run, step) for step in spec.checkpoints}
        found[run.method.name, run.seed] = {step: r for step, r in records.items() if r is not None}
    return found


def table_members(spec: CompareSpec, evals: dict, only: list[str] | None = None) -> tuple[list[str], list[int]]:
    """The methods (of ``only``, when given) with a fully evaluated run, and the seeds every one of them has fully
    evaluated."""
    complete = {key for key, records in evals.items() if len(records) == len(spec.checkpoints)}
    chosen = [m.name for m in spec.methods if only is None or m.name in only]
    methods = [m for m in chosen if any((m, s) in complete for s in spec.seeds)]
    seeds = [s for s in spec.seeds if methods and all((m, s) in complete for m in methods)]
    return (methods, seeds) if seeds else ([], [])


def arrays(spec: CompareSpec, evals: dict, methods: list[str], seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per-prompt KL and gain, ``(methods, seeds, checkpoints, prompts)``."""
    kl = [[[evals[m, s][step]["per_prompt"]["kl"] for step in spec.checkpoints] for s in seeds] for m in methods]
    gain = [[[evals[m, s][step]["per_prompt"]["gain"] for step in spec.checkpoints] for s in seeds] for m in methods]
    sizes = {len(row) for method in kl for seed in method for row in seed}
    if len(sizes) != 1:
        raise ValueError(f"the evaluations hold different numbers of prompts ({sorted(sizes)}): rerun them alike")
    return np.array(kl, dtype=float), np.array(gain, dtype=float)


def _stat(estimate: frontier.Estimate, m: int, b: int) -> dict:
    def number(x) -> float | None:
        return None if math.isnan(x) else float(x)

    return {
        "mean": number(estimate.point[m, b]),
        "low": number(estimate.low[m, b]),
        "high": number(estimate.high[m, b]),
        "missed_replicates": int(estimate.missing[m, b]),
    }


def table(spec: CompareSpec, evals: dict, only: list[str] | None = None) -> tuple[list[dict], list[int]]:
    """The rows of the reward-at-budget table (one per method and budget, of ``only`` when given), and the seeds
    they use."""
    methods, seeds = table_members(spec, evals, only)
    if not methods:
        return [], []
    kl, gain = arrays(spec, evals, methods, seeds)
    base = methods.index(spec.baseline) if spec.baseline in methods else None
    result = frontier.bootstrap(kl, gain, spec.budgets, base, spec.bootstrap, spec.bootstrap_seed, CONFIDENCE)
    rows = []
    for m, name in enumerate(methods):
        for b, budget in enumerate(spec.budgets):
            diff = _stat(result.difference, m, b) if result.difference is not None and m != base else None
            row = {"method": name, "label": spec.method(name).label, "budget": budget}
            row.update(reward_gain=_stat(result.reward, m, b), difference=diff)
            rows.append({**row, "seeds_reaching": int(result.reached[m, b])})
    return rows, seeds


def _point(step: int, record: dict) -> dict:
    return {
        "step": step,
        "kl": record["kl"]["mean"],
        "gain": record["gain"]["mean"],
        "gain_low": record["gain"]["low"],
        "gain_high": record["gain"]["high"],
        "reward": record["reward"]["mean"],
        "win_rate": record["win_rate"],
        "distinct_2": record["policy"]["distinct_2"],
        "self_bleu_4": record["policy"]["self_bleu_4"],
        "entropy": record["policy"]["entropy"],
    }


def method_points(spec: CompareSpec, evals: dict) -> list[dict]:
    """Each method's runs (their evaluated points after the reference's (0, 0)) and its envelope."""
    out = []
    for method in spec.methods:
        runs = []
        for seed in spec.seeds:
            records = evals.get((method.name, seed), {})
            if records:
                points = [{"step": 0, "kl": 0.0, "gain": 0.0}] + [_point(s, r) for s, r in sorted(records.items())]
                runs.append({"seed": seed, "points": points})
        every = [p for run in runs for p in run["points"]]
        corners = frontier.envelope([p["kl"] for p in every], [p["gain"] for p in every]) if every else ([], [])
        envelope = [[float(k), float(g)] for k, g in zip(*corners, strict=True)]
        out.append({"name": method.name, "label": method.label, "runs": runs, "envelope": envelope})
    return out


def missing_work(spec: CompareSpec, output: Path, evals: dict) -> list[str]:
    """What the study still lacks, one line per run."""
    lines = []
    for run in plan(spec, output):
        done = evals.get((run.method.name, run.seed), {})
        if len(done) == len(spec.checkpoints):
            continue
        todo = [s for s in spec.checkpoints if s not in done]
        lines.append(f"{run.name}: {'trained' if run.finished else 'not trained'}; steps {todo} not evaluated")
    return lines


def build_report(spec: CompareSpec, output: Path, table_methods: list[str] | None = None) -> dict:
    """The report's content (JSON-ready) from the files that exist; the budget table over ``table_methods`` only
    when given (so that more seeds of fewer methods can be compared)."""
    evals = collect(spec, output)
    rows, seeds = table(spec, evals, table_methods)
    first = next((r for records in evals.values() for r in records.values()), None)
    return {
        "model": spec.model,
        "reward": spec.reward,
        "prompts": first["prompts"] if first else None,
        "samples_per_prompt": spec.samples,
        "checkpoints": spec.checkpoints,
        "budgets": spec.budgets,
        "baseline": spec.baseline,
        "seeds": spec.seeds,
        "seeds_in_table": seeds,
        "methods_in_table": sorted({row["method"] for row in rows}, key=[m.name for m in spec.methods].index),
        "bootstrap": {"replicates": spec.bootstrap, "seed": spec.bootstrap_seed, "confidence": CONFIDENCE},
        "table": rows,
        "methods": method_points(spec, evals),
        "missing": missing_work(spec, output, evals),
        **provenance(),
    }


def write_report(spec: CompareSpec, output: Path, table_methods: list[str] | None = None) -> dict[str, Path]:
    """Build the report and write ``report.json``, ``report.md`` and ``frontier.png``; returns their paths."""
    from tidpo.compare.render import markdown, plot

    report = build_report(spec, output, table_methods)
    paths = {"json": output / "report.json", "markdown": output / "report.md", "png": output / "frontier.png"}
    write_text(paths["json"], json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    write_text(paths["markdown"], markdown(report))
    with replacing(paths["png"]) as tmp:
        plot(report, tmp)
    return paths
