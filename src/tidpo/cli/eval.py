"""``tidpo eval``: held-out preference metrics of a model against a reference.

Reports the reward accuracy (share of pairs whose chosen reward beats the rejected one), the mean margin, the
chosen/rejected rewards and log-probabilities, and each side's sequential KL to the reference, all from
``TIDPOTrainer.evaluate`` with uniform token weights (rewards are β · Σ log-ratio, as in DPO). The reference is
``--ref``; for a LoRA adapter folder without ``--ref``, its base model (the adapters disabled).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from tidpo.cli.common import CLIError, is_adapter_folder, load_causal_lm, load_dataset_arg, resolve_model_path
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


class _Parser(argparse.ArgumentParser):
    """argparse's errors become :class:`CLIError` (one line, exit 2)."""

    def error(self, message: str):
        raise CLIError(f"{message} (see `tidpo eval --help`)")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tidpo eval",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--model", required=True, help="model or LoRA adapter folder (or a built-in name)")
    parser.add_argument("--ref", help="reference model (default: an adapter's base model; required otherwise)")
    parser.add_argument("--dataset", required=True, help="preference pairs: a file, a folder or 'demo'")
    parser.add_argument("--split", default="test", help="split of --dataset (default: test)")
    parser.add_argument("--beta", type=float, default=0.1, help="β that scales the rewards (default: 0.1)")
    parser.add_argument("--kl_mode", default="tdpo2", choices=KL_MODES, help="KL term of the loss (default: tdpo2)")
    parser.add_argument("--batch_size", type=int, default=8, help="pairs per batch (default: 8)")
    parser.add_argument("--max_pairs", type=int, help="evaluate only the first N pairs")
    parser.add_argument("--max_length", type=int, default=1024, help="most tokens of prompt + response (1024)")
    parser.add_argument("--use_cpu", action="store_true", help="run on the CPU even when a GPU is available")
    parser.add_argument(
        "--output", type=Path, help=f"JSON file (default: <model>/{RESULTS_FILE} if writable, else ./{RESULTS_FILE})"
    )
    return parser


def default_output(model: str, model_path: str) -> Path:
    """``<model>/eval_results.json`` for a writable local folder, else ``./eval_results.json``."""
    folder = Path(model_path)
    if Path(model).is_dir() and os.access(folder, os.W_OK):
        return folder / RESULTS_FILE
    return Path.cwd() / RESULTS_FILE


def _config(args, output_dir: str):
    import torch

    from tidpo.training.config import TIDPOConfig

    for name in ("batch_size", "max_pairs"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise CLIError(f"--{name} must be at least 1, got {getattr(args, name)}")
    try:
        return TIDPOConfig(
            output_dir=output_dir,
            beta=args.beta,
            kl_mode=args.kl_mode,
            max_length=args.max_length,
            per_device_eval_batch_size=args.batch_size,
            use_cpu=args.use_cpu,
            dataloader_pin_memory=torch.cuda.is_available() and not args.use_cpu,
            report_to="none",
            save_strategy="no",
        )
    except ValueError as err:
        raise CLIError(f"invalid option: {' '.join(str(err).split())}") from err


def _load_ref(name_or_path: str, model):
    """The ``--ref`` model, which must share the policy's vocabulary (both read the policy's token ids)."""
    from tidpo.cli.train import check_causal_lm

    check_causal_lm(name_or_path)
    ref = load_causal_lm(name_or_path)[0]
    ref_vocab, vocab = ref.get_input_embeddings().num_embeddings, model.get_input_embeddings().num_embeddings
    if ref_vocab != vocab:
        raise CLIError(
            f"--ref {name_or_path} has {ref_vocab} token embeddings but --model has {vocab}: the reference must use "
            f"the model's tokenizer (pass the model it was trained from)"
        )
    return ref


def evaluate(args) -> dict:
    """Load everything (options and data checked first) and return the results written to the JSON file: the run
    (``model``, ``ref``, ``dataset``, ``split``, ``pairs``, ``beta``, ``kl_mode``, ``max_length``) and the metrics
    under TRL's names without the ``eval_`` prefix (``rewards/accuracies``, ``rewards/margins``, ``kl/chosen``, ...).
    """
    from transformers import PrinterCallback, ProgressCallback

    from tidpo.cli.train import load_policy
    from tidpo.data import PreferenceDataError
    from tidpo.training.callbacks import TIDPOProgressCallback
    from tidpo.training.trainer import TIDPOTrainer

    model_path = resolve_model_path(args.model)
    adapter = is_adapter_folder(model_path)
    if args.ref is None and not adapter:
        raise CLIError(
            f"--model {args.model} is a full model, so there is no implicit reference: pass --ref with the model "
            f"it was trained from"
        )
    with tempfile.TemporaryDirectory(prefix="tidpo-eval-") as scratch:
        config = _config(args, scratch)
        dataset = load_dataset_arg(args.dataset, args.split)
        if args.max_pairs is not None:
            dataset = dataset.select(range(min(args.max_pairs, len(dataset))))
        model, tokenizer = load_policy(args.model)
        ref = _load_ref(args.ref, model) if args.ref else None
        try:
            trainer = TIDPOTrainer(
                model=model, ref_model=ref, args=config, eval_dataset=dataset, processing_class=tokenizer
            )
        except PreferenceDataError as err:
            raise CLIError(str(err)) from err
        if len(trainer.eval_dataset) == 0:
            raise CLIError(f"every pair was dropped: the prompts fill --max_length {args.max_length}; raise it")
        trainer.remove_callback(ProgressCallback)
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(TIDPOProgressCallback(print_eval=False))
        metrics = trainer.evaluate()
    if args.ref:
        ref_name = args.ref
    else:
        base = json.loads((Path(model_path) / "adapter_config.json").read_text())["base_model_name_or_path"]
        ref_name = f"{base} (the adapter's base model)"
    return {
        "model": args.model,
        "ref": ref_name,
        "dataset": args.dataset,
        "split": args.split,
        "pairs": len(trainer.eval_dataset),
        "beta": args.beta,
        "kl_mode": args.kl_mode,
        "max_length": args.max_length,
        **{key.removeprefix("eval_"): value for key, value in metrics.items()},
    }


def format_table(results: dict) -> str:
    rows = [(label, results[key]) for key, label in TABLE if key in results]
    split = "" if Path(results["dataset"]).is_file() else f" [{results['split']}]"
    width = max(len(label) for label, _ in rows)
    head = (
        f"{results['model']} against {results['ref']}\n"
        f"on {results['dataset']}{split}, {results['pairs']} pairs, "
        f"β {results['beta']}, KL {results['kl_mode']}"
    )
    return head + "\n" + "\n".join(f"  {label:<{width}}  {value:>10.4f}" for label, value in rows)


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(sys.argv[1:] if argv is None else argv)
    output = args.output or default_output(args.model, resolve_model_path(args.model))
    results = evaluate(args)
    print(format_table(results))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"results written to {output}")
    return 0
