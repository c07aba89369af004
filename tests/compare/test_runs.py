"""Run folders: the plan's order and filters, and what a killed start leaves is cleared."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidpo.compare.runs import FINISHED, plan, resume_point
from tidpo.compare.spec import SpecError, parse_spec
from tidpo.training.checkpoints import write_marker

from .test_spec import GOOD


def test_runs_are_seed_major_and_filtered(tmp_path):
    spec = parse_spec(GOOD)
    assert [r.name for r in plan(spec, tmp_path)] == ["dpo-s0", "ti-s0", "dpo-s1", "ti-s1"]
    assert [r.name for r in plan(spec, tmp_path, methods=["ti"], seeds=[1])] == ["ti-s1"]
    assert plan(spec, tmp_path)[0].folder == tmp_path / "runs" / "dpo-s0"
    with pytest.raises(SpecError, match="--methods: 'tdpo2' is not a method"):
        plan(spec, tmp_path, methods=["tdpo2"])
    with pytest.raises(SpecError, match="--seeds: 5"):
        plan(spec, tmp_path, seeds=[5])


def test_a_run_is_finished_by_its_marker(tmp_path):
    run = plan(parse_spec(GOOD), tmp_path)[0]
    run.folder.mkdir(parents=True)
    assert not run.finished
    (run.folder / FINISHED).write_text("{}")
    assert run.finished


def _checkpoint(folder: Path, step: int, whole: bool) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(b"x" * 8)
    if whole:
        write_marker(path, step)
    return path


def test_an_unfinished_run_resumes_from_its_last_whole_checkpoint(tmp_path):
    whole = _checkpoint(tmp_path, 2, whole=True)
    _checkpoint(tmp_path, 4, whole=False)
    assert resume_point(tmp_path) == str(whole)


def test_a_start_killed_before_any_whole_checkpoint_starts_again(tmp_path):
    broken = _checkpoint(tmp_path, 2, whole=False)
    assert resume_point(tmp_path) is None and not broken.exists()
