"""``tidpo eval --prompts``: its options, their checks before any model loads, and the sampled report (the
model's and the reference's completions scored by the reward function; :mod:`tidpo.eval.generation`)."""

from __future__ import annotations

import argparse

from tidpo.cli.common import CLIError
from tidpo.cli.prompts import load_prompts
from tidpo.compare.spec import DEMO_REWARD


def add_generation_options(gen: argparse._ArgumentGroup) -> None:
    """The options of the generation metrics (``--prompts``)."""
    gen.add_argument(
        "--prompts",
        help="prompts to sample from: 'demo' (the sentiment task's held-out openings), a .txt file (one per line) "
        "or a .json/.jsonl file of rows with a 'prompt' string",
    )
    gen.add_argument("--reward", help=f"reward function module:function (default with --prompts demo: {DEMO_REWARD})")
    gen.add_argument("--samples", type=int, default=4, help="completions per prompt and model (default: 4)")
    gen.add_argument("--max_new_tokens", type=int, default=32, help="tokens per completion at most (default: 32)")
    gen.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default: 1)")
    gen.add_argument("--top_p", type=float, default=1.0, help="nucleus sampling (default: 1, off; <1 biases the KL)")
    gen.add_argument("--seed", type=int, default=0, help="sampling seed, the same for both models (default: 0)")
    gen.add_argument("--no_sample_cache", action="store_true", help="resample the reference instead of its cache")


def generation_inputs(args):
    """``(prompts, reward_fn, settings)`` for ``--prompts``, checked before any model is loaded."""
    from tidpo.eval.generation import SamplingSettings, load_reward_fn

    if args.samples < 1:
        raise CLIError(f"--samples must be at least 1, got {args.samples}")
    spec = args.reward or (DEMO_REWARD if args.prompts == "demo" else None)
    if spec is None:
        raise CLIError(f"--prompts {args.prompts} needs --reward module:function (e.g. {DEMO_REWARD})")
    try:
        reward_fn = load_reward_fn(spec)
        settings = SamplingSettings(
            max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p, batch_size=96
        )
    except ValueError as err:
        raise CLIError(str(err)) from err
    return load_prompts(args.prompts), reward_fn, settings


def generation_metrics(args, generation, model, ref, tokenizer) -> dict:
    """The ``--prompts`` report: samples of the model and of the reference, scored by the reward function."""
    from tidpo.eval.generation import RewardError, generation_report

    prompts, reward_fn, settings = generation
    try:
        report = generation_report(
            model,
            tokenizer,
            prompts,
            reward_fn,
            args.samples,
            settings,
            args.seed,
            reference=ref,
            cache=not args.no_sample_cache,
        )
    except RewardError as err:
        raise CLIError(f"--reward {args.reward or DEMO_REWARD}: {err}") from err
    return {"prompts_source": args.prompts, "reward": args.reward or DEMO_REWARD, **report}
