"""Interruptions lose nothing: SIGTERM/SIGINT finish the step, write a checkpoint and exit 143/130; `kill -9`
mid-step and during saves leaves only whole checkpoints; resuming ends with the parameters of an uninterrupted run.
Each case runs `tidpo train` as a separate process on the tiny model, as a user's run would be killed."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tidpo.training import checkpoints

STEPS = 24
# constant learning rate, so that a run resumed at any step follows the uninterrupted one step for step
SETTINGS = [
    "--max_steps", str(STEPS), "--per_device_train_batch_size", "2", "--learning_rate", "1e-2",
    "--lr_scheduler_type", "constant", "--logging_steps", "1", "--max_length", "32", "--anchor_max_new_tokens", "4",
    "--use_cpu", "--seed", "0", "--disable_tqdm", "true", "--dataloader_num_workers", "0",
]  # fmt: skip


def _command(assets, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "tidpo.cli.main", "train", "--model", str(assets.base), "--dataset",
        str(assets.train_file), "--output_dir", str(out), *SETTINGS, *extra,
    ]  # fmt: skip


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _run(assets, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(_command(assets, out, *extra), env=_env(), capture_output=True, text=True, timeout=600)


def _start(assets, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(_command(assets, out, *extra), env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early (exit {proc.returncode}): {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out")
        time.sleep(0.05)


def _logged_steps(out: Path) -> int:
    path = out / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _max_difference(a: Path, b: Path) -> float:
    left, right = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert left.keys() == right.keys()
    return max(float((left[k].float() - right[k].float()).abs().max()) for k in left)


def _steps_in_metrics(out: Path) -> list[int]:
    return [row["step"] for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in row]


@pytest.fixture(scope="module")
def uninterrupted(tiny_assets, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    done = _run(tiny_assets, out)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_finishes_the_step_saves_and_resumes_exactly(tiny_assets, tmp_path, uninterrupted, signum, status):
    out = tmp_path / "run"
    proc = _start(tiny_assets, out)
    _wait_for(lambda: _logged_steps(out) >= 3, proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == status, err[-2000:]
    stopped = [line for line in err.splitlines() if "stopped by" in line]
    assert stopped and signal.Signals(signum).name in stopped[0], err[-2000:]
    step = int(stopped[0].split("after step ")[1].split(";")[0])
    assert 3 <= step < STEPS and checkpoints.problem(out / f"checkpoint-{step}") is None
    assert not (out / "model.safetensors").exists()  # an unfinished run is not published as the trained model
    done = _run(tiny_assets, out, "--resume_from_checkpoint", "true")
    assert done.returncode == 0, done.stderr[-2000:]
    assert _max_difference(out, uninterrupted) <= 1e-6
    assert _steps_in_metrics(out) == list(range(1, STEPS + 1))  # every step once


def test_kill_9_mid_run_then_resume_matches_the_uninterrupted_run(tiny_assets, tmp_path, uninterrupted):
    out = tmp_path / "run"
    proc = _start(tiny_assets, out, "--save_strategy", "steps", "--save_steps", "5")
    _wait_for(lambda: (out / "checkpoint-10").exists() and _logged_steps(out) >= 12, proc)
    proc.kill()  # SIGKILL, somewhere in step 12 or later
    proc.communicate()
    done = _run(tiny_assets, out, "--save_strategy", "steps", "--save_steps", "5", "--resume")
    assert done.returncode == 0, done.stderr[-2000:]
    assert _max_difference(out, uninterrupted) <= 1e-6
    assert _steps_in_metrics(out) == list(range(1, STEPS + 1))


def test_kill_9_during_saves_never_leaves_a_half_checkpoint(tiny_assets, tmp_path):
    """20 kills at random moments of a run that saves every step; after each, every checkpoint-N is whole and the
    run resumes from the last one."""
    out = tmp_path / "run"
    rng = random.Random(0)
    save = ["--save_strategy", "steps", "--save_steps", "1", "--max_steps", "1000"]
    resumed_from = []
    for attempt in range(20):
        resume = ["--resume_from_checkpoint", "true"] if checkpoints.checkpoints(out) else ["--overwrite_output_dir"]
        proc = _start(tiny_assets, out, *save, *resume)
        before = len(checkpoints.checkpoints(out))
        _wait_for(lambda b=before: len(checkpoints.checkpoints(out)) > b, proc)  # it saves
        time.sleep(rng.uniform(0.0, 0.6))  # then dies anywhere: in a step, in a save, in a rename
        proc.kill()
        proc.communicate()
        for _, folder in checkpoints.checkpoints(out):
            assert checkpoints.problem(folder) is None, f"attempt {attempt}: {folder}: {checkpoints.problem(folder)}"
        resumed_from.append(checkpoints.last_complete(out))
    assert all(folder is not None for folder in resumed_from)
    steps = [int(folder.name.split("-")[1]) for folder in resumed_from]
    assert steps == sorted(steps) and steps[-1] > steps[0]  # the run moved on from kill to kill
    state = json.loads((resumed_from[-1] / "trainer_state.json").read_text())
    assert state["global_step"] == steps[-1]
    torch.load(resumed_from[-1] / "optimizer.pt", weights_only=True)  # loads, whole
