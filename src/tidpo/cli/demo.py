"""``tidpo demo``: the embedded default. Align SmolLM2-135M-Instruct toward positive sentiment with TI-DPO + LoRA.

1. ``tidpo train`` on the built-in sentiment pairs (``--dataset demo``) with ``tidpo/resources/demo.yaml``;
2. ``tidpo eval`` on the held-out pairs (preference accuracy), ``tidpo explain`` on a few of them;
3. ``tidpo eval --prompts demo``: continuations of the held-out openings (films never trained on) sampled from the
   trained model and from the untrained one (its adapters off), same seed, scored by VADER: both means with their
   95 % bootstrap intervals, the paired gain with its interval, the win rate and the KL.
Everything lands in ``--output_dir``; ``demo_summary.json`` keeps the numbers and every scored sample. The demo's
targets: a held-out reward gain of at least +0.15 whose 95 % interval excludes 0, and a held-out preference
accuracy of at least 0.65; it says whether this run met them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path

from tidpo.cli import options
from tidpo.cli.common import CLIError
from tidpo.files import write_text

MODEL = "smollm2-135m-instruct"
TARGET_GAIN = 0.15
TARGET_ACCURACY = 0.65


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tidpo demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    options.MODEL.add_to(parser, default=MODEL, help=f"model folder or built-in name (default: {MODEL})")
    parser.add_argument("--output_dir", type=Path, default=Path("outputs/demo"))
    parser.add_argument("--samples", type=int, default=4, help="continuations sampled per held-out opening (4)")
    parser.add_argument("--seed", type=int, default=1234, help="sampling seed, the same for both models")
    parser.add_argument("--max_steps", type=int, default=None, help="override demo.yaml's max_steps")
    parser.add_argument("--preset", help="override demo.yaml's preset (paper or official: the paper's or the authors')")
    return parser


def _method_settings(config_file: Path, preset: str | None) -> dict:
    """The demo config's preset values (β for eval; λ, σ divisor and span for explain), explicit keys winning."""
    import yaml

    from tidpo.training.config import PRESETS
    from tidpo.training.presets import DEFAULT_PRESET

    config = yaml.safe_load(config_file.read_text())
    if preset is not None:
        if preset not in PRESETS:
            raise CLIError(f"--preset {preset!r} is not one of {', '.join(PRESETS)}")
        config["preset"] = preset
    return {**PRESETS["paper"], **PRESETS[config.get("preset", DEFAULT_PRESET)], **config}


def main(argv: list[str] | None = None) -> int:
    from tidpo.resources import HERE

    args = make_parser().parse_args(argv)
    if args.samples < 1:
        raise CLIError(f"--samples must be >= 1, got {args.samples}")
    start = time.perf_counter()
    out = args.output_dir
    method = _method_settings(HERE / "demo.yaml", args.preset)
    print(f"[1/3] {method['preset']} training (LoRA) on the built-in sentiment pairs")
    status = _run("train", _train_argv(args, HERE / "demo.yaml"))
    if status:  # stopped by a signal: the checkpoint and how to continue were printed
        return status
    print("[2/3] held-out preference accuracy and token-importance page")
    eval_json, gen_json = out / "eval_results.json", out / "generation_results.json"
    explain_page = _evaluate_and_explain(out, method, eval_json)
    print("[3/3] held-out openings: the trained model against the untrained one, same seed")
    _run("eval", _generation_argv(args, gen_json))
    gen = json.loads(gen_json.read_text())["generation"]
    accuracy = json.loads(eval_json.read_text())["rewards/accuracies"]
    summary = _summary(method["preset"], gen, accuracy, time.perf_counter() - start)
    write_text(out / "demo_summary.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    _print_summary(summary, gen, out, explain_page)
    return 0


def _run(command: str, argv: list[str]) -> int:
    """Run ``tidpo <command> <argv>`` in this process, found through the command registry as ``tidpo`` finds it;
    a :class:`CLIError` it raises ends the demo."""
    from tidpo.cli.main import COMMANDS

    return importlib.import_module(COMMANDS[command][0]).main(argv)


def _train_argv(args: argparse.Namespace, config_file: Path) -> list[str]:
    """``tidpo train``'s arguments: the demo config on the built-in pairs, replacing an earlier demo's output (the
    demo is meant to be re-run)."""
    train_argv = ["--config", str(config_file), "--model", args.model, "--dataset", "demo"]
    train_argv += ["--output_dir", str(args.output_dir), "--overwrite_output_dir"]
    if args.max_steps is not None:
        train_argv += ["--max_steps", str(args.max_steps)]
    if args.preset is not None:
        train_argv += ["--preset", args.preset]
    return train_argv


def _generation_argv(args: argparse.Namespace, output: Path) -> list[str]:
    """``tidpo eval --prompts demo``'s arguments: the trained adapter against its base (the adapters off), sampled
    with the same seed."""
    argv = ["--model", str(args.output_dir), "--prompts", "demo", "--samples", str(args.samples)]
    return [*argv, "--seed", str(args.seed), "--output", str(output)]


def _evaluate_and_explain(out: Path, method: dict, eval_json: Path) -> Path | None:
    """``tidpo eval`` and ``tidpo explain`` of the trained adapter on the held-out pairs, with the trained settings;
    the explain page's path, or None when the preset's weights read no attribution (no page is made)."""
    common = ["--model", str(out), "--dataset", "demo", "--split", "test"]
    _run("eval", [*common, "--beta", str(method["beta"]), "--output", str(eval_json)])
    if method["importance"] != "hybrid":
        print(
            f"      (no token-importance page: the {method['preset']} preset's weights read no attribution; "
            "`tidpo explain` shows the paper's)"
        )
        return None
    weights = ["--importance_mix", str(method["importance_mix"]), "--prior_sigma_div", str(method["prior_sigma_div"])]
    weights += ["--weight_span", method["weight_span"]]
    _run("explain", [*common, "--n", "8", "--output_dir", str(out / "explain"), *weights])
    return out / "explain" / "explain.html"


def _summary(preset: str, gen: dict, accuracy: float, seconds: float) -> dict:
    """The numbers ``demo_summary.json`` keeps (with every scored sample) and whether the targets were met."""
    gain = gen["reward_difference"]
    return {
        "preset": preset,
        "reward_before": gen["reference"]["reward"],
        "reward_after": gen["policy"]["reward"],
        "reward_gain": gain,
        "win_rate": gen["win_rate"],
        "kl": gen["kl"],
        "positive_fraction_before": gen["reference"]["positive_fraction"],
        "positive_fraction_after": gen["policy"]["positive_fraction"],
        "heldout_preference_accuracy": accuracy,
        "targets": {"reward_gain": TARGET_GAIN, "accuracy": TARGET_ACCURACY},
        "met_gain": gain["mean"] >= TARGET_GAIN and gain["low"] > 0,
        "met_accuracy": accuracy >= TARGET_ACCURACY,
        "seconds": seconds,
        "samples": gen["samples"],
    }


def _ci(stat: dict) -> str:
    return f"{stat['mean']:+.3f}  (95 % CI {stat['low']:+.3f} to {stat['high']:+.3f})"


def _print_summary(summary: dict, gen: dict, out: Path, explain_page: Path | None) -> None:
    """The before/after rewards with their intervals, the targets met or not, and where the outputs are."""
    met_gain = "met" if summary["met_gain"] else "NOT met"
    met_accuracy = "met" if summary["met_accuracy"] else "NOT met"
    n = len(gen["samples"])
    print(f"\n{gen['prompts']} held-out openings, {n} sampled continuations per model (VADER compound, -1..1):")
    print(f"  mean reward before  {_ci(gen['reference']['reward'])}")
    print(f"  mean reward after   {_ci(gen['policy']['reward'])}")
    gain = _ci(gen["reward_difference"])
    print(f"  gain (paired)       {gain}   target >= +{TARGET_GAIN:.2f} with the interval above 0: {met_gain}")
    print(f"  win rate {gen['win_rate']:.3f}, KL {gen['kl']['mean']:.2f} nats per continuation")
    before, after = summary["positive_fraction_before"], summary["positive_fraction_after"]
    print(f"  positive share      before {before:.2f}   after {after:.2f}")
    accuracy = summary["heldout_preference_accuracy"]
    print(f"  held-out preference accuracy {accuracy:.3f}   target >= {TARGET_ACCURACY:.2f}: {met_accuracy}")
    print(f"\n  adapter:        {out}\n  curves:         {out / 'training_curves.png'}")
    if explain_page is not None:  # this run's page, never one an earlier demo left in the folder
        print(f"  explain page:   {explain_page}")
    print(f"  summary:        {out / 'demo_summary.json'}")
    print(f"  time: {summary['seconds'] / 60:.1f} min")
