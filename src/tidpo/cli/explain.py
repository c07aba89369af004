"""``tidpo explain``: each response token of a few preference pairs shaded by its TI-DPO weight (HTML, PNG, JSON).

The weights are computed exactly as training computes them (see :mod:`tidpo.eval.explain`), from the given model
as the policy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tidpo.cli.common import CLIError
from tidpo.cli.options import DATASET, MODEL, ON_BAD_ROW, SPLIT
from tidpo.importance.estimators import ESTIMATORS
from tidpo.importance.targets import ATTRIBUTION_TARGETS, TARGETS
from tidpo.importance.weights import SPANS

# The default preset's values (docs/method.md §5); tests/cli/test_explain.py checks them against TIDPOConfig's
# PRESETS and DEFAULT_PRESET, which are not imported here so that `tidpo explain --help` stays fast.
DEFAULT_IMPORTANCE = "confidence"
DEFAULT_MIX = 0.7
DEFAULT_SIGMA_DIV = 4.0
DEFAULT_SPAN = "response"
DEFAULTS = {
    "importance": DEFAULT_IMPORTANCE,
    "importance_mix": DEFAULT_MIX,
    "prior_sigma_div": DEFAULT_SIGMA_DIV,
    "weight_span": DEFAULT_SPAN,
    "attribution_target": "max_logit",
    "max_length": 512,
}
AS_TRAINED = "as the model was trained (its folder's tidpo_config.json)"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tidpo explain",
        description=(
            "Write explain.html (every response token shaded by its TI-DPO weight, with the gradient and prior "
            "components), explain.png (the first pairs) and explain.json (all numbers) for the first N pairs."
        ),
    )
    MODEL.add_to(parser, help="a local model folder, PEFT adapter folder or built-in name", required=True)
    DATASET.add_to(parser, help="a preference file/folder or built-in dataset name", required=True)
    SPLIT.add_to(parser, help="dataset split (default: %(default)s)")
    ON_BAD_ROW.add_to(parser)
    parser.add_argument("--n", type=int, default=8, help="pairs to explain (default: %(default)s)")
    parser.add_argument("--output_dir", default="explain", help="where the files go (default: %(default)s)")
    _add_weight_options(parser)
    parser.add_argument("--batch_size", type=int, default=2, help="pairs per forward pass (default: %(default)s)")
    parser.add_argument("--png_pairs", type=int, default=4, help="pairs drawn in explain.png (default: %(default)s)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    return parser


def _add_weight_options(parser: argparse.ArgumentParser) -> None:
    """The settings the token weights are computed with; unset, they are taken as the model was trained."""
    parser.add_argument(
        "--importance",
        choices=[name for name, e in ESTIMATORS.items() if not e.reads_columns],
        help=f"the estimator, as in training (default: {AS_TRAINED}, else {DEFAULT_IMPORTANCE}, the default "
        "preset's; hybrid is the paper's gradient attribution)",
    )
    parser.add_argument(
        "--importance_mix", type=float, help=f"λ of Eq. 8, in [0, 1] (default: {AS_TRAINED}, else {DEFAULT_MIX})"
    )
    parser.add_argument(
        "--prior_sigma_div", type=float, help=f"σ = T / this, Eq. 7 (default: {AS_TRAINED}, else {DEFAULT_SIGMA_DIV})"
    )
    parser.add_argument(
        "--weight_span",
        choices=SPANS,
        help=f"span the components are normalised over (default: {AS_TRAINED}, else {DEFAULT_SPAN})",
    )
    parser.add_argument(
        "--attribution_target",
        choices=ATTRIBUTION_TARGETS,
        help="what the attribution differentiates: "
        + "; ".join(f"{name}: {target.help}" for name, target in TARGETS.items())
        + f" (default: {AS_TRAINED}, else max_logit)",
    )
    parser.add_argument(
        "--max_length", type=int, help=f"prompt + response tokens kept per row (default: {AS_TRAINED}, else 512)"
    )


def _check_args(args: argparse.Namespace) -> None:
    checks = [
        ("--n", args.n >= 1, ">= 1"),
        ("--importance_mix", 0.0 <= args.importance_mix <= 1.0, "in [0, 1]"),
        ("--prior_sigma_div", args.prior_sigma_div > 0, "> 0"),
        ("--max_length", args.max_length >= 2, ">= 2"),
        ("--batch_size", args.batch_size >= 1, ">= 1"),
        ("--png_pairs", args.png_pairs >= 1, ">= 1"),
    ]
    for option, ok, rule in checks:
        if not ok:
            raise CLIError(f"{option} must be {rule}, got {getattr(args, option[2:])}")
    estimator = ESTIMATORS.get(args.importance)
    if estimator is None or estimator.reads_columns:  # only a saved setting can get here (argparse checks flags)
        why = "takes its weights from the dataset's columns" if estimator else "is not a built-in estimator"
        raise CLIError(f"importance {args.importance!r} (as trained) {why}; pass --importance, e.g. hybrid")
    output_dir = Path(args.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise CLIError(f"--output_dir {output_dir} exists and is not a folder; pick another path")


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    from tidpo.cli.common import resolve_model_path, trained_settings

    trained_settings(args, resolve_model_path(args.model), DEFAULTS, "explain")
    _check_args(args)
    from datasets.utils.logging import disable_progress_bar

    from tidpo.cli.common import load_causal_lm, load_dataset_arg
    from tidpo.eval.render import write_explanation

    disable_progress_bar()
    dataset = load_dataset_arg(args.dataset, args.split, on_bad_row=args.on_bad_row)  # before the model
    model, tokenizer = load_causal_lm(args.model)
    _to_device(model, args.device)
    explanation = _explain(args, model, tokenizer, dataset)
    for pair in explanation.pairs:
        print(
            f"row {pair.row + 1}: chosen {pair.chosen.num_tokens} tokens (max w {pair.chosen.max_weight:.2f}), "
            f"rejected {pair.rejected.num_tokens} tokens (max w {pair.rejected.max_weight:.2f})"
        )
    for path in write_explanation(explanation, args.output_dir, png_pairs=args.png_pairs).values():
        print(path)
    return 0


def _to_device(model, device: str | None) -> None:
    """Move the model to ``--device`` (default: cuda when available); a device torch refuses is one line."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        model.to(device)
    except (RuntimeError, AssertionError) as err:
        raise CLIError(f"--device {device!r}: {str(err).splitlines()[0]}") from err


def _explain(args: argparse.Namespace, model, tokenizer, dataset):
    """The token weights of the first ``--n`` pairs that fit ``--max_length`` (at least one must)."""
    from tidpo.data import PreferenceDataError
    from tidpo.eval.explain import explain_pairs

    try:
        explanation = explain_pairs(
            model,
            tokenizer,
            dataset,
            args.n,
            mix=args.importance_mix,
            sigma_div=args.prior_sigma_div,
            span=args.weight_span,
            max_length=args.max_length,
            batch_size=args.batch_size,
            name=args.split,
            target=args.attribution_target,
            importance=args.importance,
        )
    except PreferenceDataError as err:
        raise CLIError(str(err)) from err
    if not explanation.pairs:
        raise CLIError(f"no pair of {args.dataset} fits --max_length {args.max_length}; raise it")
    explanation.model, explanation.dataset = args.model, f"{args.dataset} ({args.split})"
    return explanation
