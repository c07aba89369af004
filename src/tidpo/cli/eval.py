"""``tidpo eval``: a model against its reference, on held-out preference pairs and/or by sampling from prompts.

``--dataset``: the reward accuracy (share of pairs whose chosen reward beats the rejected one), the mean margin,
the chosen/rejected rewards and log-probabilities, and each side's sequential KL to the reference, all from
``TIDPOTrainer.evaluate`` with uniform token weights (rewards are β · Σ log-ratio, as in DPO): forward passes
only, no attribution and no gradient graph; the throughput is reported in pairs/s.

``--prompts``: ``--samples`` completions per prompt from the model and from the reference (same seed; the
reference's cached), scored by ``--reward module:function``: mean reward with its 95 % bootstrap interval, the
paired difference and win rate against the reference, KL(model ‖ reference) from the samples, Distinct-2/4,
Self-BLEU-4 and the mean token entropy (definitions in docs/method.md).

The reference is ``--ref``; for a LoRA adapter folder without ``--ref``, its base model (the adapters disabled).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from tidpo.cli.common import (
    CLIError,
    check_folder_path,
    check_writable_folder,
    is_adapter_folder,
    load_dataset_arg,
    resolve_model_path,
    trained_settings,
)
from tidpo.cli.eval_generation import add_generation_options, generation_inputs, generation_metrics
from tidpo.cli.model_checks import load_policy, load_reference
from tidpo.cli.options import DATASET, MODEL, ON_BAD_ROW, SPLIT, CommandParser
from tidpo.files import write_text
from tidpo.losses.dpo import KL_MODES

# (metric key without "eval_", label on screen)
TABLE = (
    ("rewards/accuracies", "preference accuracy"),
    ("rewards/margins", "mean margin (chosen - rejected reward)"),
    ("rewards/chosen", "chosen reward"),
    ("rewards/rejected", "rejected reward"),
    ("logps/chosen", "chosen log-prob"),
    ("logps/rejected", "rejected log-prob"),
    ("kl/chosen", "sequential KL, chosen"),
    ("kl/rejected", "sequential KL, rejected"),
    ("loss", "loss"),
)
RESULTS_FILE = "eval_results.json"
DEFAULTS = {"beta": 0.1, "kl_mode": "tdpo2", "kl_weight": None, "max_length": 1024}
AS_TRAINED = "as the model was trained (its folder's tidpo_config.json)"


def make_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="tidpo eval",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    MODEL.add_to(parser, help="model or LoRA adapter folder (or a built-in name)", required=True)
    parser.add_argument("--ref", help="reference model (default: an adapter's base model; required otherwise)")
    DATASET.add_to(parser, help="preference pairs: a file, a folder or 'demo'")
    SPLIT.add_to(parser, help="split of --dataset (default: test)", default="test")
    ON_BAD_ROW.add_to(parser)
    _add_pair_options(parser)
    add_generation_options(parser.add_argument_group("generation metrics (--prompts)"))
    parser.add_argument(
        "--output", type=Path, help=f"JSON file (default: <model>/{RESULTS_FILE} if writable, else ./{RESULTS_FILE})"
    )
    return parser


def _add_pair_options(parser: argparse.ArgumentParser) -> None:
    """The options of the preference-pair metrics (``--dataset``)."""
    parser.add_argument("--beta", type=float, help=f"β that scales the rewards (default: {AS_TRAINED}, else 0.1)")
    parser.add_argument("--kl_mode", choices=KL_MODES, help=f"KL term of the loss (default: {AS_TRAINED}, else tdpo2)")
    parser.add_argument("--kl_weight", type=float, help=f"α of the KL term (default: {AS_TRAINED}, else 0.5)")
    parser.add_argument("--batch_size", type=int, default=8, help="pairs per batch (default: 8)")
    parser.add_argument("--max_pairs", type=int, help="evaluate only the first N pairs")
    parser.add_argument(
        "--max_length", type=int, help=f"most tokens of prompt + response (default: {AS_TRAINED}, else 1024)"
    )
    parser.add_argument("--use_cpu", action="store_true", help="run on the CPU even when a GPU is available")


def default_output(model: str, model_path: str) -> Path:
    """``<model>/eval_results.json`` for a writable local folder, else ``./eval_results.json``."""
    folder = Path(model_path)
    if Path(model).is_dir() and os.access(folder, os.W_OK):
        return folder / RESULTS_FILE
    return Path.cwd() / RESULTS_FILE


def _config(args, output_dir: str):
    import torch

    from tidpo.training.config import TIDPOConfig

    if args.batch_size < 1:
        raise CLIError(f"--batch_size must be at least 1, got {args.batch_size}")
    try:
        return TIDPOConfig(
            output_dir=output_dir,
            beta=args.beta,
            kl_mode=args.kl_mode,
            kl_weight=args.kl_weight,
            max_length=args.max_length,
            per_device_eval_batch_size=args.batch_size,
            use_cpu=args.use_cpu,
            dataloader_pin_memory=torch.cuda.is_available() and not args.use_cpu,
            report_to="none",
            save_strategy="no",
        )
    except ValueError as err:
        raise CLIError(f"invalid option: {' '.join(str(err).split())}") from err


def evaluate(args) -> dict:
    """Load everything (options and data checked first) and return the results written to the JSON file: the run
    (``model``, ``ref``), with ``--dataset`` the pairs' settings (``dataset``, ``split``, ``pairs``, ``beta``,
    ``kl_mode``, ``max_length``) and metrics under TRL's names without the ``eval_`` prefix
    (``rewards/accuracies``, ``rewards/margins``, ``kl/chosen``, ..., ``pairs_per_second``), and with ``--prompts``
    a ``generation`` report (:func:`tidpo.eval.generation.generation_report`)."""
    model_path = _check_what_to_evaluate(args)
    generation = generation_inputs(args) if args.prompts else None
    dataset = _load_pairs(args) if args.dataset is not None else None
    with tempfile.TemporaryDirectory(prefix="tidpo-eval-") as scratch:
        config = _config(args, scratch)  # options checked before any model is loaded
        model, tokenizer = load_policy(args.model)
        ref = load_reference(args.ref, model) if args.ref else None
        results: dict = {"model": args.model, "ref": _reference_name(args.ref, model_path)}
        if dataset is not None:
            results.update(_preference_metrics(args, config, dataset, model, ref, tokenizer))
    if generation is not None:
        for m in (model, ref):
            if m is not None:
                m.to(config.device)
        results["generation"] = generation_metrics(args, generation, model, ref, tokenizer)
    return results


def _check_what_to_evaluate(args) -> str:
    """Something to evaluate, and a reference to evaluate against; fills the options left unset as the model was
    trained. Returns the model's resolved path."""
    if args.dataset is None and args.prompts is None:
        raise CLIError("nothing to evaluate: give --dataset (preference pairs), --prompts (sampling) or both")
    model_path = resolve_model_path(args.model)
    trained_settings(args, model_path, DEFAULTS, "eval")
    if args.ref is None and not is_adapter_folder(model_path):
        raise CLIError(
            f"--model {args.model} is a full model, so there is no implicit reference: pass --ref with the model "
            f"it was trained from"
        )
    return model_path


def _load_pairs(args):
    """The ``--dataset`` pairs, the first ``--max_pairs`` of them when given."""
    dataset = load_dataset_arg(args.dataset, args.split, on_bad_row=args.on_bad_row)
    if args.max_pairs is None:
        return dataset
    if args.max_pairs < 1:
        raise CLIError(f"--max_pairs must be at least 1, got {args.max_pairs}")
    return dataset.select(range(min(args.max_pairs, len(dataset))))


def _reference_name(ref: str | None, model_path: str) -> str:
    """How the results name the reference: ``--ref``, or the adapter's base model."""
    if ref:
        return ref
    base = json.loads((Path(model_path) / "adapter_config.json").read_text())["base_model_name_or_path"]
    return f"{base} (the adapter's base model)"


def _preference_metrics(args, config, dataset, model, ref, tokenizer) -> dict:
    """``TIDPOTrainer.evaluate`` on the pairs (no attribution, no gradient graph), timed."""
    from tidpo.data import PreferenceDataError
    from tidpo.training.trainer import TIDPOTrainer

    try:
        trainer = TIDPOTrainer(
            model=model,
            ref_model=ref,
            args=config,
            eval_dataset=dataset,
            processing_class=tokenizer,
            evaluation_only=True,
        )
    except PreferenceDataError as err:
        raise CLIError(str(err)) from err
    if len(trainer.eval_dataset) == 0:
        raise CLIError(f"every pair was dropped: the prompts fill --max_length {args.max_length}; raise it")
    metrics = _timed_evaluation(trainer)
    metrics = {key.removeprefix("eval_"): value for key, value in metrics.items()}
    metrics["pairs_per_second"] = metrics.pop("samples_per_second", None)
    metrics.pop("steps_per_second", None)
    return {
        "dataset": args.dataset,
        "split": args.split,
        "pairs": len(trainer.eval_dataset),
        "beta": args.beta,
        "kl_mode": args.kl_mode,
        "max_length": args.max_length,
        **metrics,
    }


def _timed_evaluation(trainer) -> dict:
    """``trainer.evaluate()`` under tidpo's progress bar (no Trainer printout)."""
    from transformers import PrinterCallback, ProgressCallback

    from tidpo.training.callbacks import TIDPOProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(TIDPOProgressCallback(print_eval=False))
    return trainer.evaluate()


def format_table(results: dict) -> str:
    rows = [(label, results[key]) for key, label in TABLE if key in results]
    if results.get("pairs_per_second"):
        rows.append(("pairs per second (forward only)", results["pairs_per_second"]))
    split = "" if Path(results["dataset"]).is_file() else f" [{results['split']}]"
    width = max(len(label) for label, _ in rows)
    head = (
        f"{results['model']} against {results['ref']}\n"
        f"on {results['dataset']}{split}, {results['pairs']} pairs, "
        f"β {results['beta']}, KL {results['kl_mode']}"
    )
    return head + "\n" + "\n".join(f"  {label:<{width}}  {value:>10.4f}" for label, value in rows)


def main(argv: list[str] | None = None) -> int:
    from tidpo.eval.generation import format_generation_table

    args = make_parser().parse_args(sys.argv[1:] if argv is None else argv)
    output = args.output or default_output(args.model, resolve_model_path(args.model))
    if output.is_dir():
        raise CLIError(f"--output {output} is a folder; give a file name (e.g. {output / RESULTS_FILE})")
    check_folder_path(output.parent, "--output: the folder")
    check_writable_folder(output.parent, "--output: the folder")  # before the work, not after it
    results = evaluate(args)
    if "pairs" in results:
        print(format_table(results))
    if "generation" in results:
        print(f"{results['model']} against {results['ref']}, sampling from --prompts {args.prompts}")
        print(format_generation_table(results["generation"]))
    write_text(output, json.dumps(results, indent=2) + "\n")  # a kill while writing leaves the previous results
    print(f"results written to {output}")
    return 0
