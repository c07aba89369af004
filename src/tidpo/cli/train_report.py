"""What ``tidpo train`` leaves and says at the end: the training curves and the model card in ``--output_dir``, and
the report on stdout (or, for a run a signal stopped, how to continue it)."""

from __future__ import annotations

import sys
from pathlib import Path

from tidpo.cli.train_options import TrainRun

METRICS_FILE = "metrics.jsonl"


def signal_name(signum: int) -> str:
    import signal

    return signal.Signals(signum).name


def print_stopped(out: Path, signum: int, step: int) -> int:
    """Say which signal stopped the run after which step and how to continue it; returns the exit status."""
    from tidpo.training.signals import exit_status

    print(
        f"tidpo train: stopped by {signal_name(signum)} after step {step}; checkpoint {out / f'checkpoint-{step}'} "
        f"written; continue with the same command and --resume_from_checkpoint true "
        f"(exit status {exit_status(signum)})",
        file=sys.stderr,
    )
    return exit_status(signum)


def write_outputs(run: TrainRun, trainer, argv: list[str], pairs: tuple, eval_before, eval_after):
    """Draw ``training_curves.png`` (when anything was logged) and write the model card ``README.md``.

    Args:
        pairs: ``(training pairs, held-out pairs or None)`` as counted when loaded.

    Returns:
        ``(curves path or None, model card path)``.
    """
    from tidpo.model_card import RunSummary, write_model_card
    from tidpo.plotting import has_curves, plot_training_curves
    from tidpo.training.outputs import last_train_log

    out = Path(run.config.output_dir)
    metrics_path = out / METRICS_FILE
    curves = None
    if has_curves(metrics_path):  # a run too short to log has nothing to draw; the report says so
        curves = plot_training_curves(metrics_path, out / "training_curves.png", title=f"tidpo train: {out.name}")
    summary = RunSummary(
        model=run.script.model,
        dataset=run.script.dataset,
        train_pairs=pairs[0],
        config=run.config,
        eval_dataset=run.script.eval_dataset,
        eval_pairs=pairs[1],
        lora=run.lora.summary(),
        train_metrics=last_train_log(trainer.state.log_history),
        eval_before=eval_before,
        eval_after=eval_after,
        argv=argv,
    )
    return curves, write_model_card(out / "README.md", summary)


def print_report(run: TrainRun, train_metrics, eval_after, curves, card, seconds: float) -> None:
    """The time, loss and held-out accuracy of the run, and where each output is."""
    out = Path(run.config.output_dir)
    what = "LoRA adapter" if run.lora.use_lora else "model"
    lines = [f"\ntidpo train: done in {seconds:.1f} s (train_loss {train_metrics['train_loss']:.4g})"]
    if eval_after:
        acc, margin = eval_after.get("eval_rewards/accuracies"), eval_after.get("eval_rewards/margins")
        lines.append(f"  held-out reward accuracy {acc:.3f}, margin {margin:.4g}")
    rows = [
        (f"{what} + tokenizer", out),
        ("metrics (one JSON line per log)", out / METRICS_FILE),
        ("training curves", curves or "none: nothing was logged (lower --logging_steps)"),
        ("model card", card),
    ]
    if "tensorboard" in run.config.report_to:
        rows.append(("tensorboard logs", f"{out / 'runs'}  (tensorboard --logdir {out / 'runs'})"))
    skipped = run.script.skipped_rows
    if skipped:
        lines.append(f"  skipped {len(skipped)} bad row(s) (--on_bad_row skip); the first: {skipped[0]}")
    width = max(len(label) for label, _ in rows)
    lines += [f"  {label:<{width}}  {path}" for label, path in rows]
    print("\n".join(lines))
