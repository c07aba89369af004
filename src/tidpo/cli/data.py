"""``tidpo data sentiment``: (re)build the built-in sentiment preference set that ``--dataset demo`` reads.

Samples continuations of the movie-review openings in ``tidpo/tasks/openings.txt`` from the model, ranks them by
VADER compound score, and writes ``train.jsonl``, ``test.jsonl`` and ``meta.json``. The shipped set was written by
``tidpo data sentiment`` with the defaults below.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tidpo.cli.common import CLIError, load_causal_lm


def make_parser() -> argparse.ArgumentParser:
    from tidpo.resources import BUILTIN_DATASETS

    parser = argparse.ArgumentParser(
        prog="tidpo data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="task", required=True)
    sentiment = sub.add_parser("sentiment", help="movie-review openings, VADER-ranked continuations")
    sentiment.add_argument("--model", default="smollm2-135m-instruct", help="model that samples the continuations")
    sentiment.add_argument("--samples", type=int, default=8, help="continuations sampled per opening")
    sentiment.add_argument(
        "--min_gap", type=float, default=0.5, help="smallest reward gap between chosen and rejected kept (0.5)"
    )
    sentiment.add_argument("--max_new_tokens", type=int, default=32)
    sentiment.add_argument("--seed", type=int, default=0)
    sentiment.add_argument(
        "--output_dir",
        type=Path,
        default=BUILTIN_DATASETS["demo"],
        help="where to write train.jsonl/test.jsonl (default: the built-in 'demo' folder)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.samples < 2:
        raise CLIError(f"--samples must be at least 2 to form a pair, got {args.samples}")
    from tidpo.tasks.sentiment import SamplingSettings, build_sentiment_dataset

    model, tokenizer = load_causal_lm(args.model)
    settings = SamplingSettings(max_new_tokens=args.max_new_tokens)
    meta = build_sentiment_dataset(
        model,
        tokenizer,
        args.output_dir,
        samples=args.samples,
        seed=args.seed,
        settings=settings,
        min_gap=args.min_gap,
    )
    print(
        f"wrote {meta['train_pairs']} train pairs ({meta['train_openings']} openings) and {meta['test_pairs']} "
        f"held-out pairs ({meta['test_openings']} openings) to {args.output_dir}"
    )
    return 0
