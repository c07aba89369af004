"""Results made under other settings than the study file's are refused, never mixed into a report.

A finished run is skipped and an evaluation file is read back as is, so a study file edited after they were made
(another learning rate, another schedule, another sampling temperature) would otherwise put old numbers under the
new settings' name. Each finished run's marker keeps the settings it trained with and each evaluation keeps its
sampling settings, prompts and reward; :func:`check_results` compares them with the file's and fails with one line
naming the run, the setting, both values and the fix.
"""

from __future__ import annotations

import json

from tidpo.compare.checks import SpecError
from tidpo.compare.runs import FINISHED, Run
from tidpo.compare.spec import CompareSpec

SAMPLING_KEYS = ("max_new_tokens", "temperature", "top_p", "top_k")
FIX = "restore the file's value, or move {folder} away to make it again"


def _plain(value):
    """``value`` as JSON reads it back (tuples become lists), so a recorded value compares equal to a fresh one."""
    return json.loads(json.dumps(value))


def _first_difference(made: dict, wanted: dict) -> str | None:
    for key in sorted(set(made) | set(wanted)):
        if made.get(key) != wanted.get(key):
            return f"{key} = {made.get(key)!r} there, {wanted.get(key)!r} in the study file"
    return None


def training_difference(spec: CompareSpec, run: Run, record: dict) -> str | None:
    """How the finished ``run``'s recorded settings differ from the study file's, or None."""
    wanted = {**spec.training_settings(run.method, run.seed, ""), **spec.lora(run.method)}
    made = {**record.get("settings", {}), **record.get("lora", {})}
    for settings in (wanted, made):
        settings.pop("output_dir", None)  # the folder may move (--output); it is not a training setting
    return _first_difference(_plain(made), _plain(wanted))


def sampling_difference(spec: CompareSpec, record: dict) -> str | None:
    """How an evaluation file's sampling differs from the study file's, or None."""
    wanted = {**{k: getattr(spec, k) for k in SAMPLING_KEYS}, "samples": spec.samples, "sample_seed": spec.sample_seed}
    sampling = record.get("sampling", {})
    made = {**{k: sampling.get(k) for k in SAMPLING_KEYS}}
    made.update(samples=record.get("samples_per_prompt"), sample_seed=record.get("sample_seed"))
    for key, value in (("prompts_source", spec.prompts), ("reward_function", spec.reward)):
        if key in record:  # recorded since 2026-12-04
            made[key], wanted[key] = record[key], value
    return _first_difference(_plain(made), _plain(wanted))


def check_results(spec: CompareSpec, runs: list[Run]) -> None:
    """Refuse any finished run or evaluation that the study file, as it is now, would not have made.

    Raises:
        SpecError: the first such result, with the setting that differs and the fix.
    """
    from tidpo.compare.evaluate import eval_path, read_eval
    from tidpo.training.checkpoints import problem

    for run in runs:
        fix = FIX.format(folder=run.folder)
        if run.finished:
            record = json.loads((run.folder / FINISHED).read_text(encoding="utf-8"))
            why = training_difference(spec, run, record)
            if why is not None:
                raise SpecError(f"run {run.name} was trained with other settings: {why}; {fix}")
        for step in spec.checkpoints:
            record = read_eval(run, step)
            why = None if record is None else sampling_difference(spec, record)
            if why is not None:
                raise SpecError(f"{eval_path(run, step)} was sampled with other settings: {why}; {fix}")
            if run.finished and record is None and problem(run.checkpoint(step)) is not None:
                raise SpecError(
                    f"run {run.name} has no checkpoint at step {step} to evaluate (its folder was deleted, or the "
                    f"step was added to the study file after the run trained); move {run.folder} away to train it "
                    "again"
                )
