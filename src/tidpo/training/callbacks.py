"""Trainer callbacks: a compact progress bar, every log row saved as a JSON line, sampled completions at evaluation.

``TIDPOProgressCallback`` replaces transformers' ``ProgressCallback``/``PrinterCallback`` (which print whole log
dicts); ``MetricsJsonlCallback`` writes ``metrics.jsonl``, the file ``tidpo.plotting`` draws the curves from.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

from tqdm.auto import tqdm
from transformers import PrinterCallback, ProgressCallback, TrainerCallback

from tidpo.files import write_text

logger = logging.getLogger("tidpo.training")

# (log key, short label) shown in the progress bar's postfix, in this order, when present.
POSTFIX_KEYS = (("loss", "loss"), ("rewards/accuracies", "acc"), ("rewards/margins", "margin"))
# Eval metrics summarised in one line after each evaluation.
EVAL_SUMMARY_KEYS = (
    ("eval_loss", "loss"),
    ("eval_rewards/accuracies", "acc"),
    ("eval_rewards/margins", "margin"),
    ("eval_kl/rejected", "kl/rejected"),
)


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class TIDPOProgressCallback(TrainerCallback):
    """A tqdm bar over the training steps whose postfix shows, at each log, the loss, the reward accuracy, the
    margin and the seconds per optimizer step since the previous log; evaluations print one summary line.

    With ``disable_tqdm`` the same values are printed as one line per log instead of a bar.

    Args:
        print_eval: print the one-line summary of each evaluation (off when the caller prints its own table).
    """

    def __init__(self, print_eval: bool = True):
        self.print_eval = print_eval
        self.training_bar = None
        self.prediction_bar = None
        self._last_step = 0
        self._last_log_step = 0
        self._last_log_time = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.training_bar = tqdm(total=state.max_steps, desc="train", dynamic_ncols=True, disable=args.disable_tqdm)
        self._last_step = self._last_log_step = state.global_step
        self._last_log_time = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.training_bar is not None:
            self.training_bar.update(state.global_step - self._last_step)
        self._last_step = state.global_step

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        if not state.is_world_process_zero or eval_dataloader is None or not hasattr(eval_dataloader, "__len__"):
            return
        if self.prediction_bar is None:
            self.prediction_bar = tqdm(
                total=len(eval_dataloader), desc="eval", leave=False, dynamic_ncols=True, disable=args.disable_tqdm
            )
        self.prediction_bar.update(1)

    def on_evaluate(self, args, state, control, **kwargs):
        if self.prediction_bar is not None:
            self.prediction_bar.close()
            self.prediction_bar = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if any(key.startswith("eval_") for key in logs):
            if not self.print_eval:
                return
            parts = [f"{label} {_fmt(logs[key])}" for key, label in EVAL_SUMMARY_KEYS if key in logs]
            self._write(f"eval @ step {state.global_step}: " + ", ".join(parts))
            return
        postfix = {label: _fmt(logs[key]) for key, label in POSTFIX_KEYS if key in logs}
        if not postfix:  # the end-of-training summary (train_runtime, train_loss, ...) is printed by the CLI
            return
        now, steps = time.perf_counter(), state.global_step - self._last_log_step
        if steps > 0:
            postfix["s/step"] = f"{(now - self._last_log_time) / steps:.2f}"
        self._last_log_step, self._last_log_time = state.global_step, now
        if self.training_bar is not None and not self.training_bar.disable:
            self.training_bar.set_postfix(postfix, refresh=True)
        else:
            self._write(f"step {state.global_step}: " + ", ".join(f"{k} {v}" for k, v in postfix.items()))

    def on_train_end(self, args, state, control, **kwargs):
        if self.training_bar is not None:
            self.training_bar.close()
            self.training_bar = None

    def _write(self, line: str) -> None:
        tqdm.write(line)


def use_tidpo_progress(trainer) -> None:
    """Swap the trainer's default progress/printer callback for :class:`TIDPOProgressCallback`."""
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(TIDPOProgressCallback())


class MetricsJsonlCallback(TrainerCallback):
    """Append every log dict, with ``step`` and ``epoch``, as one JSON line to ``path`` (flushed at once, so a run
    that dies keeps every line written so far).

    Args:
        path: the file, usually ``<output_dir>/metrics.jsonl``; its folder is created.
        append: keep the lines already in ``path`` (resuming a run); otherwise the file starts empty.
    """

    def __init__(self, path: str | Path, append: bool = False):
        self.path, self.append = Path(path), append
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not append:
            self.path.write_text("")

    def on_train_begin(self, args, state, control, **kwargs):
        """Resuming: drop the lines of steps after the checkpoint (they are logged again), and a last line a kill
        cut short, so the file holds every step once."""
        if not self.append or not state.is_world_process_zero or not self.path.exists():
            return
        kept, dropped = [], 0
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                dropped += 1  # a line cut short by a kill
                continue
            if isinstance(row, dict) and (row.get("step") or 0) > state.global_step:
                dropped += 1
                continue
            kept.append(line)
        if dropped:
            write_text(self.path, "".join(line + "\n" for line in kept))
            logger.warning(
                f"{self.path}: dropped {dropped} line(s) logged after step {state.global_step}, the "
                "checkpoint resumed from"
            )

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        row = {"step": state.global_step, "epoch": state.epoch, **logs}
        # NaN/inf would make the line invalid JSON; null keeps the row readable and the gap visible in plots.
        row = {key: (None if isinstance(v, float) and not math.isfinite(v) else v) for key, v in row.items()}
        with self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(row) + "\n")
            file.flush()


class LogCompletionsCallback(TrainerCallback):
    """At each evaluation, sample one completion for each of a few prompts from the policy and save them as JSON
    lines (``{"step", "prompt", "completion"}``), text only and offline, like TRL's ``LogCompletionsCallback``.

    Sampling runs under ``torch.random.fork_rng`` with a fixed seed: the same prompts get comparable samples from
    one evaluation to the next, and the training's own random streams (dropout, shuffling, anchors) are untouched.
    Every process samples (a sharded model needs all of them); the main process writes.

    Args:
        prompts: prompt strings, or a preference dataset whose ``prompt`` column is used (conversational prompts go
            through the tokenizer's chat template with the generation prompt).
        num_prompts: how many of them (the first ones).
        max_new_tokens, temperature: sampling settings.
        seed: the sampling seed.
        path: the file; default ``<output_dir>/completions.jsonl``.
    """

    def __init__(
        self,
        prompts,
        num_prompts: int = 4,
        max_new_tokens: int = 32,
        temperature: float = 1.0,
        seed: int = 0,
        path: str | Path | None = None,
    ):
        if num_prompts < 1:
            raise ValueError(f"num_prompts must be >= 1, got {num_prompts}")
        from tidpo.eval.generation import SamplingSettings

        self.settings = SamplingSettings(max_new_tokens=max_new_tokens, temperature=temperature)
        self.prompts, self.num_prompts, self.seed = prompts, num_prompts, seed
        self.path = None if path is None else Path(path)

    def prompt_texts(self, tokenizer) -> list[str]:
        """The prompts as text (a dataset's conversational prompts rendered with the chat template)."""
        if isinstance(self.prompts, (list, tuple)):
            rows = list(self.prompts[: self.num_prompts])
        else:
            if "prompt" not in self.prompts.column_names:
                raise ValueError("LogCompletionsCallback needs prompts: the dataset has no 'prompt' column")
            rows = self.prompts.select(range(min(self.num_prompts, len(self.prompts))))["prompt"]
        return [_prompt_text(tokenizer, row) for row in rows]

    def on_evaluate(self, args, state, control, model=None, processing_class=None, **kwargs):
        import torch

        from tidpo.eval.generation import generate_samples

        prompts = self.prompt_texts(processing_class)
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            samples = generate_samples(model, processing_class, prompts, 1, self.settings, seed=self.seed)
        if not state.is_world_process_zero:
            return
        path = self.path or Path(args.output_dir) / "completions.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as file:
            for sample in samples:
                row = {"step": state.global_step, "prompt": sample.prompt, "completion": sample.text}
                file.write(json.dumps(row, ensure_ascii=False) + "\n")
        lines = [f"completions at step {state.global_step} ({path}):"]
        lines += [f"  {s.prompt[-60:]!r} -> {s.text[:100]!r}" for s in samples]
        tqdm.write("\n".join(lines))


def _prompt_text(tokenizer, prompt) -> str:
    """A prompt as text: a string as it is, a conversation through the chat template with the generation prompt."""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
