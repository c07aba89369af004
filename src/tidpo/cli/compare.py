"""``tidpo compare``: reward-against-KL frontiers of several methods, from one study file (docs/compare.md).

Trains each run (one folder per method and seed, seed-major; finished runs are skipped, an unfinished one resumes),
evaluates each run's checkpoints on the prompts (one file each, skipped when present), and writes the report:
``report.md``, ``report.json`` and ``frontier.png`` in the output folder.

  tidpo compare examples/compare-sentiment.yaml               # everything still missing, then the report
  tidpo compare examples/compare-sentiment.yaml --seeds 0     # only the first seed's runs
  tidpo compare examples/compare-sentiment.yaml --list        # runs and evaluations, done or not
  tidpo compare examples/compare-sentiment.yaml --report      # the report from what exists, nothing trained
  tidpo compare --quick                                       # the pipeline on a tiny model (CI)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from tidpo.cli.common import CLIError, check_writable_folder
from tidpo.cli.options import CommandParser
from tidpo.files import write_text


def make_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="tidpo compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("spec", nargs="?", type=Path, help="the study's YAML file (docs/compare.md)")
    parser.add_argument("--output", type=Path, help="output folder (default: the spec's `output`, else outputs/<spec>)")
    parser.add_argument("--methods", help="comma-separated methods to run (default: all)")
    parser.add_argument("--seeds", help="comma-separated seeds to run (default: all)")
    parser.add_argument("--list", action="store_true", help="print the runs and evaluations, done or not")
    parser.add_argument(
        "--report",
        action="store_true",
        help="rebuild the report from existing files only (with --methods: the budget table over those methods, "
        "so that the seeds they all have are used)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny model, 2 methods x 2 seeds x 2 steps (CI)")
    return parser


def load(args) -> tuple:
    """``(spec, output)`` from the arguments; ``--quick`` builds its spec (and tiny model) in the output folder."""
    from tidpo.compare.quick import quick_spec
    from tidpo.compare.spec import SpecError, load_spec, parse_spec

    if args.quick == (args.spec is not None):
        raise CLIError("give a study file or --quick (one of them)")
    try:
        if args.quick:
            output = args.output or Path(tempfile.mkdtemp(prefix="tidpo-compare-quick-"))
            check_writable_folder(output, "--output")
            return parse_spec(quick_spec(output), where="--quick"), output
        spec = load_spec(args.spec)
    except SpecError as err:
        raise CLIError(str(err)) from err
    output = args.output or (Path(spec.output) if spec.output else Path("outputs") / args.spec.stem)
    return spec, output


def _filters(args) -> tuple[list[str] | None, list[int] | None]:
    methods = args.methods.split(",") if args.methods else None
    try:
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    except ValueError as err:
        raise CLIError(f"--seeds {args.seeds!r}: expected comma-separated integers, e.g. 0,1") from err
    return methods, seeds


def list_runs(spec, runs) -> None:
    from tidpo.compare.evaluate import read_eval

    for run in runs:
        done = [step for step in spec.checkpoints if read_eval(run, step) is not None]
        state = "done" if run.finished and len(done) == len(spec.checkpoints) else "todo"
        trained = "trained" if run.finished else "not trained"
        print(f"{state}  {run.name}: {trained}, evaluated steps {done or 'none'} of {spec.checkpoints}")
    finished = sum(run.finished for run in runs)
    print(f"{finished} of {len(runs)} runs trained")


def summary_line(spec, run, seconds: float) -> str:
    """One line on a finished run: its last checkpoint's KL, gain and win rate."""
    from tidpo.compare.evaluate import read_eval

    last = read_eval(run, spec.checkpoints[-1])
    gain = last["gain"]
    interval = f"{gain['mean']:+.3f} [{gain['low']:+.3f}, {gain['high']:+.3f}]"
    point = f"KL {last['kl']['mean']:.3f}, gain {interval}, win rate {last['win_rate']:.3f}"
    return f"{run.name}: {seconds:.0f} s; step {last['step']}: {point}"


def execute(spec, output: Path, runs) -> None:
    """Train what is not trained, evaluate what is not evaluated, run by run (a progress bar over the runs)."""
    import time

    from tqdm.auto import tqdm

    from tidpo.cli.common import resolve_model_path
    from tidpo.compare.evaluate import evaluate_run, make_context
    from tidpo.compare.runs import load_training_pairs, train_run

    model_path = resolve_model_path(spec.model)
    data = load_training_pairs(spec)
    context = make_context(spec, model_path)
    bar = tqdm(runs, desc="runs", unit="run", file=sys.stderr)
    for run in bar:
        bar.set_postfix_str(run.name)
        start = time.perf_counter()
        if not run.finished:
            train_run(spec, run, model_path, data)
        if evaluate_run(context, run):
            tqdm.write(summary_line(spec, run, time.perf_counter() - start), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    from dataclasses import asdict

    from tidpo.compare.report import write_report
    from tidpo.compare.runs import plan
    from tidpo.compare.spec import SpecError
    from tidpo.compare.stale import check_results

    args = make_parser().parse_args(sys.argv[1:] if argv is None else argv)
    spec, output = load(args)
    try:
        runs = plan(spec, output, *_filters(args))
        check_results(spec, plan(spec, output))
    except SpecError as err:
        raise CLIError(str(err)) from err
    if args.list:
        list_runs(spec, runs)
        return 0
    check_writable_folder(output, "--output")
    if not args.report:
        write_text(output / "spec.json", json.dumps(asdict(spec), indent=1, ensure_ascii=False) + "\n")
        execute(spec, output, runs)
    paths = write_report(spec, output, _filters(args)[0] if args.report else None)
    print("\n".join(f"{kind:<8}  {path}" for kind, path in paths.items()))
    return 0
