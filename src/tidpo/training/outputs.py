"""What ``TIDPOTrainer.save_model()`` writes next to the model, from Python as from the command line: the model card
``README.md`` (not PEFT's blank template), ``metrics.jsonl`` (every logged row) and ``training_curves.png``; and an
``adapter_config.json`` that names its base portably (a built-in model by its name, never this machine's cache)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tidpo.files import replacing, write_text
from tidpo.model_card import RunSummary, write_model_card
from tidpo.models import BUILTIN_MODELS, cache_root
from tidpo.plotting import has_curves, plot_training_curves
from tidpo.training.callbacks import MetricsJsonlCallback


def portable_base(name_or_path: str | None) -> str | None:
    """A built-in model's cache folder becomes the built-in name; anything else stays as given."""
    if not name_or_path:
        return name_or_path
    for name in BUILTIN_MODELS:
        try:
            if Path(name_or_path).expanduser().resolve() == (cache_root() / "models" / name).resolve():
                return name
        except OSError:
            continue
    return name_or_path


def fix_adapter_config(folder: Path) -> None:
    """Rewrite ``base_model_name_or_path`` of ``folder/adapter_config.json`` with :func:`portable_base`."""
    path = folder / "adapter_config.json"
    if not path.is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    if portable_base(base) != base:
        config["base_model_name_or_path"] = portable_base(base)
        write_text(path, json.dumps(config, indent=2, sort_keys=True) + "\n")


def write_metrics_jsonl(path: Path, history: list[dict]) -> Path:
    """The trainer's log history as JSON lines (non-finite numbers as null), replacing the file atomically."""
    with replacing(path) as tmp, tmp.open("w", encoding="utf-8") as file:
        for row in history:
            clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
            file.write(json.dumps(clean) + "\n")
    return path


def last_train_log(history: list[dict]) -> dict:
    """The last logged training values (``loss`` and the ``name/stat`` metrics), merged over the history."""
    merged: dict = {}
    for row in history:
        if not any(key.startswith("eval_") for key in row):
            merged.update({k: v for k, v in row.items() if "/" in k or k == "loss"})
    return merged


def last_eval_log(history: list[dict]) -> dict | None:
    return next((row for row in reversed(history) if "eval_loss" in row), None)


def lora_summary(model) -> dict | None:
    """``r``, ``alpha``, ``dropout`` and ``target_modules`` of a PEFT model's active LoRA adapter, else None."""
    config = getattr(model, "peft_config", {}).get(getattr(model, "active_adapter", "default"))
    if config is None or not hasattr(config, "r"):
        return None
    targets = config.target_modules
    targets = targets if isinstance(targets, str) else " ".join(sorted(targets or []))
    return {"r": config.r, "alpha": config.lora_alpha, "dropout": config.lora_dropout, "target_modules": targets}


def write_run_files(trainer, folder: Path, metrics_dir: Path | None = None) -> None:
    """The card, metrics and curves of ``trainer``'s run in ``folder`` (main process only). ``metrics_dir`` is
    the folder the model is bound for, when ``folder`` stages it: a ``metrics.jsonl`` streamed there during
    training is the one the curves are drawn from, and is not written again."""
    fix_adapter_config(folder)
    history = trainer.state.log_history
    streamed_path = (metrics_dir or folder) / "metrics.jsonl"
    streamed = any(
        isinstance(cb, MetricsJsonlCallback) and cb.path.resolve() == streamed_path.resolve()
        for cb in trainer.callback_handler.callbacks
    )
    metrics = streamed_path if streamed else folder / "metrics.jsonl"
    if not streamed:
        write_metrics_jsonl(metrics, history)
    if has_curves(metrics):
        plot_training_curves(metrics, folder / "training_curves.png", title=f"tidpo: {(metrics_dir or folder).name}")
    sources = trainer.data_sources
    summary = RunSummary(
        model=sources["model"],
        dataset=sources["dataset"],
        train_pairs=_length(trainer.train_dataset) or 0,
        config=trainer.args,
        eval_dataset=sources["eval_dataset"],
        eval_pairs=_length(trainer.eval_dataset),
        lora=lora_summary(trainer.accelerator.unwrap_model(trainer.model)),
        train_metrics=last_train_log(history),
        eval_after=last_eval_log(history),
        argv=None,
    )
    write_model_card(folder / "README.md", summary)
    write_trained_settings(folder, trainer.args)


SETTINGS_FILE = "tidpo_config.json"
# the method settings `tidpo eval` / `tidpo explain` take from the folder of a trained model (docs/method.md §5)
SETTINGS = (
    "preset",
    "baseline",
    "beta",
    "kl_mode",
    "kl_weight",
    "triplet_weight",
    "triplet_margin",
    "importance",
    "importance_mix",
    "prior_sigma_div",
    "weight_span",
    "weight_norm",
    "attribution_target",
    "max_length",
)


# what else a resumed run must share with the run it continues, for the exact resume (checked with a warning)
RESUME_SETTINGS = (
    *SETTINGS,
    "learning_rate",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "seed",
    "data_seed",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "optim",
)


def _settings(config, names) -> dict:
    values = {name: getattr(config, name, None) for name in names}
    return {name: getattr(value, "value", value) for name, value in values.items()}  # enums as their strings


def write_trained_settings(folder: Path, config, names=SETTINGS) -> Path:
    """``tidpo_config.json``: the method settings of the run (resolved from the preset), read back by the tools."""
    path = folder / SETTINGS_FILE
    write_text(path, json.dumps(_settings(config, names), indent=2) + "\n")
    return path


def changed_settings(checkpoint: Path, config) -> list[str]:
    """The settings of ``config`` that differ from those recorded in ``checkpoint`` (``name: old -> new``); empty
    when they agree or the checkpoint records none (written by an older tidpo)."""
    path = checkpoint / SETTINGS_FILE
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    now = json.loads(json.dumps(_settings(config, RESUME_SETTINGS)))  # the same JSON round trip as the file's
    return [
        f"{name}: {recorded[name]!r} -> {now[name]!r}"
        for name in now
        if name in recorded and recorded[name] != now[name]
    ]


def _length(dataset) -> int | str | None:
    """Pairs in a dataset (or a dict of them); ``"streamed"`` for streaming data, which has no length."""
    if dataset is None:
        return None
    if isinstance(dataset, dict):
        lengths = [_length(d) for d in dataset.values()]
        return "streamed" if "streamed" in lengths else sum(lengths)
    return len(dataset) if hasattr(dataset, "__len__") else "streamed"
