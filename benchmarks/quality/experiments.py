"""What the quality experiments run: the methods (each a set of TIDPOConfig overrides) and their labels, the noise
levels, the HH recipe and the seeds, as one list of runs (``run_list``), each with the JSON file it writes."""

from __future__ import annotations

from pathlib import Path

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
                    runs += [
                        {
                            "experiment": experiment,
                            "method": m,
                            "seed": seed,
                            "flip": f,
                            "name": f"{m}-flip{round(f * 100)}-s{seed}",
                        }
                        for m in NOISE_METHODS
                    ]
            elif experiment == "hh":
                runs += [
                    {"experiment": experiment, "method": m, "seed": seed, "name": f"{m}-s{seed}"} for m in HH_METHODS
                ]
    return runs


def result_path(results: Path, run: dict) -> Path:
    return results / run["experiment"] / f"{run['name']}.json"
