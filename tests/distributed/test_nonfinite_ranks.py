"""A NaN noted on one rank only (not in the gradients, so DDP's all-reduce cannot spread it): both ranks take the
same decision at the same step, through the update guard's all-reduced flag. Raise: both raise, rank 0 naming the
other process. Skip: both drop the update, and their parameters stay identical."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.distributed.test_equivalence import HERE, ROOT, torchrun


def _run(tmp_path: Path, mode: str) -> dict[int, dict]:
    command = torchrun(str(HERE / "nonfinite_worker.py"), "--out", str(tmp_path), "--on_nonfinite", mode)
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    return {rank: json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)}


@pytest.mark.parametrize("mode", ["raise", "skip"])
def test_a_nan_on_one_rank_gives_both_ranks_one_decision(tmp_path, mode):
    ranks = _run(tmp_path, mode)
    if mode == "raise":
        assert "update of step 2: loss" in ranks[1]["error"], ranks[1]
        assert "update of step 2: on another process" in ranks[0]["error"], ranks[0]
        assert ranks[0]["global_step"] == ranks[1]["global_step"] == 1
    else:
        assert ranks[0]["error"] is None and ranks[1]["error"] is None
        assert ranks[0]["skipped"] == ranks[1]["skipped"] == 1
        assert ranks[0]["global_step"] == ranks[1]["global_step"] == 3
    assert ranks[0]["checksum"] == ranks[1]["checksum"]  # no rank applied an update the other dropped
