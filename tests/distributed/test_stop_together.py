"""Two processes (torchrun, gloo on CPU): SIGTERM sent to one rank only stops both at the same step, after one
checkpoint that both wrote their part of; the run then resumes under torchrun and finishes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from tests.distributed.test_equivalence import cli_inputs, torchrun, train_args  # noqa: F401 (fixture)
from tidpo.training import checkpoints


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _rank_of(pid: int) -> int | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in environ:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


def test_sigterm_to_one_rank_stops_both_at_one_step_with_one_checkpoint(cli_inputs):  # noqa: F811
    out = cli_inputs / "stopped"
    command = torchrun(*train_args(cli_inputs, "stopped", 2))
    steps_at = command.index("--max_steps") + 1
    command[steps_at] = "400"  # far more than it runs before the signal
    proc = subprocess.Popen(command, cwd=cli_inputs, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    metrics = out / "metrics.jsonl"
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:] if proc.poll() else ""
        time.sleep(0.1)
    workers = {_rank_of(pid): pid for pid in _children(proc.pid)}
    assert set(workers) >= {0, 1}, workers
    os.kill(workers[1], signal.SIGTERM)  # rank 1 only; rank 0 learns of it through the all-reduced flag
    _, err = proc.communicate(timeout=300)
    # the two ranks write to one stderr, so their lines may run together: count the messages, not the lines
    stops = re.findall(r"stopped by SIGTERM after step (\d+);", err)
    assert len(stops) == 2, err[-3000:]  # both ranks stopped, on the same step
    steps = {int(step) for step in stops}
    assert len(steps) == 1, stops
    step = steps.pop()
    saved = checkpoints.checkpoints(out)
    assert [s for s, _ in saved] == [step] and checkpoints.problem(saved[0][1]) is None
    assert (saved[0][1] / "rng_state_0.pth").exists() and (saved[0][1] / "rng_state_1.pth").exists()  # both parts
    command[steps_at] = str(step + 2)  # two more steps after the checkpoint
    resumed = subprocess.run(
        [*command, "--resume_from_checkpoint", "true"], cwd=cli_inputs, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (out / "model.safetensors").exists()
