"""The runs of a study: one folder per method and seed, ``<output>/runs/<method>-s<seed>/``, trained in this process.

Each run saves a checkpoint exactly at each step of the spec's ``checkpoints`` (a callback asks the trainer to
save there), and trains ``max_steps`` = the last of them. tidpo's checkpoints are written whole or not at all
(:mod:`tidpo.training.checkpoints`), and the run's marker :data:`FINISHED` is written last, atomically: a run with
its marker is done and skipped; one without resumes from its last whole checkpoint (the trainer refuses a resume
whose settings changed), or starts again when it has none. A kill therefore loses at most the steps since the last
checkpoint of the run in progress.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from transformers import TrainerCallback

from tidpo.compare.spec import CompareSpec, Method, SpecError
from tidpo.files import write_text

FINISHED = "compare_run.json"


@dataclass
class Run:
    """One training run of the study."""

    method: Method
    seed: int
    folder: Path

    @property
    def name(self) -> str:
        return f"{self.method.name}-s{self.seed}"

    @property
    def finished(self) -> bool:
        return (self.folder / FINISHED).is_file()

    def checkpoint(self, step: int) -> Path:
        return self.folder / f"checkpoint-{step}"


def plan(spec: CompareSpec, output: Path, methods: list[str] | None = None, seeds: list[int] | None = None):
    """The study's runs in seed-major order (every method's first seed first), optionally only some methods/seeds.

    Raises:
        SpecError: a method or seed filter that names something the spec does not have.
    """
    names = [m.name for m in spec.methods]
    for name in methods or []:
        if name not in names:
            raise SpecError(f"--methods: {name!r} is not a method of the study; give some of {', '.join(names)}")
    for seed in seeds or []:
        if seed not in spec.seeds:
            raise SpecError(f"--seeds: {seed} is not a seed of the study; give some of {spec.seeds}")
    chosen = [m for m in spec.methods if methods is None or m.name in methods]
    return [
        Run(m, seed, output / "runs" / f"{m.name}-s{seed}")
        for seed in spec.seeds
        if seeds is None or seed in seeds
        for m in chosen
    ]


class SaveAtSteps(TrainerCallback):
    """Ask the trainer for a checkpoint at each of ``steps`` (any list of steps, regular or not)."""

    def __init__(self, steps):
        self.steps = set(steps)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step in self.steps:
            control.should_save = True
        return control


def load_training_pairs(spec: CompareSpec):
    """The spec's training pairs (``demo``: the built-in sentiment pairs), the first ``train_pairs`` if given."""
    from tidpo.cli.common import load_dataset_arg

    data = load_dataset_arg(spec.train, "train")
    if spec.train_pairs is not None:
        data = data.select(range(min(spec.train_pairs, len(data))))
    return data


def resume_point(folder: Path) -> str | None:
    """The last whole checkpoint of an unfinished run, or None after clearing what a killed start left."""
    from tidpo.training.checkpoints import checkpoints, last_complete

    last = last_complete(folder)
    if last is not None:
        return str(last)
    for _, partial in checkpoints(folder):
        shutil.rmtree(partial)
    return None


def _peft_config(lora: dict):
    if not lora:
        return None
    from peft import LoraConfig

    targets = lora.get("lora_target_modules", "all-linear")
    return LoraConfig(
        r=lora.get("lora_r", 16),
        lora_alpha=lora.get("lora_alpha", 32),
        lora_dropout=lora.get("lora_dropout", 0.05),
        target_modules=targets,
        task_type="CAUSAL_LM",
    )


def build_trainer(spec: CompareSpec, run: Run, model_path: str, data):
    """The run's ``TIDPOTrainer``: the model loaded afresh, the spec's settings, a checkpoint at each listed step."""
    from transformers import PrinterCallback

    from tidpo.cli.common import load_causal_lm
    from tidpo.training.config import TIDPOConfig
    from tidpo.training.trainer import TIDPOTrainer

    config = TIDPOConfig(**spec.training_settings(run.method, run.seed, str(run.folder)))
    model, tokenizer = load_causal_lm(model_path)
    trainer = TIDPOTrainer(
        model=model,
        args=config,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=_peft_config(spec.lora(run.method)),
    )
    trainer.remove_callback(PrinterCallback)  # the logs stay in the run's record, not on the screen
    trainer.add_callback(SaveAtSteps(spec.checkpoints))
    return trainer


def train_run(spec: CompareSpec, run: Run, model_path: str, data) -> dict:
    """Train ``run`` (resuming it if it was started), check that every listed checkpoint is whole, and write its
    marker; returns the marker's record."""
    from tidpo.training.checkpoints import problem

    run.folder.mkdir(parents=True, exist_ok=True)
    resume = resume_point(run.folder)
    start = time.perf_counter()
    trainer = build_trainer(spec, run, model_path, data)
    trainer.train(resume_from_checkpoint=resume)
    for step in spec.checkpoints:
        why = problem(run.checkpoint(step))
        if why is not None:
            raise RuntimeError(f"run {run.name}: checkpoint {step} is not whole after training: {why}")
    record = {
        "method": run.method.name,
        "label": run.method.label,
        "seed": run.seed,
        "settings": spec.training_settings(run.method, run.seed, str(run.folder)),
        "lora": spec.lora(run.method),
        "train_pairs": len(data),
        "resumed_from": resume,
        "routes": str(trainer.routes),
        "train_seconds": time.perf_counter() - start,
        "train_log": [h for h in trainer.state.log_history if "loss" in h],
        **provenance(),
    }
    write_text(run.folder / FINISHED, json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    return record


def provenance() -> dict:
    """When, on what and from which code a result was made."""
    return {"date": dt.date.today().isoformat(), "code": code_version(), "machine": machine()}


def machine() -> dict:
    """CPU model, cores, GPU name and torch version."""
    import torch

    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "torch": torch.__version__}


def code_version() -> str:
    """The tidpo commit (``+dirty`` with uncommitted changes) when it runs from a git checkout, else its version."""
    import tidpo

    root = Path(tidpo.__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return f"tidpo {tidpo.__version__}"
    git = ["git", "-C", str(root)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    if head.returncode != 0:
        return f"tidpo {tidpo.__version__}"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
