"""Checkpoints written whole or not at all, a resume that takes only whole ones and continues exactly, and
metrics.jsonl holding every step once after a resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.tiny import make_model
from tests.training.helpers import config, param_snapshot, sentiment_pairs
from tidpo import TIDPOTrainer
from tidpo.training import checkpoints
from tidpo.training.callbacks import MetricsJsonlCallback


def _fake_checkpoint(root: Path, step: int, marker: bool = True) -> Path:
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"x" * (10 + step))
    (folder / "trainer_state.json").write_text("{}")
    if marker:
        checkpoints.write_marker(folder, step)
    return folder


def test_last_complete_skips_unmarked_and_damaged_checkpoints(tmp_path):
    _fake_checkpoint(tmp_path, 2)
    _fake_checkpoint(tmp_path, 10)
    _fake_checkpoint(tmp_path, 12, marker=False)  # a save that did not finish
    damaged = _fake_checkpoint(tmp_path, 14)
    (damaged / "model.safetensors").write_bytes(b"x" * 3)  # truncated after it was saved
    reports = []
    assert checkpoints.last_complete(tmp_path, report=reports.append) == tmp_path / "checkpoint-10"  # 10 > 2
    assert len(reports) == 2 and "checkpoint-14" in reports[0] and "has 3 bytes, 24" in reports[0]
    assert "checkpoint-12" in reports[1] and checkpoints.MARKER in reports[1]


def test_resolve_resume(tmp_path):
    assert checkpoints.resolve_resume(None, tmp_path) is None
    assert checkpoints.resolve_resume("false", tmp_path) is None
    with pytest.raises(checkpoints.ResumeError, match="has no complete checkpoint"):
        checkpoints.resolve_resume(True, tmp_path)
    with pytest.raises(checkpoints.ResumeError, match="does not exist"):
        checkpoints.resolve_resume(str(tmp_path / "checkpoint-9"), tmp_path)
    _fake_checkpoint(tmp_path, 3)
    half = _fake_checkpoint(tmp_path, 5, marker=False)
    assert checkpoints.resolve_resume("true", tmp_path) == str(tmp_path / "checkpoint-3")
    with pytest.raises(checkpoints.ResumeError, match="not a complete checkpoint"):
        checkpoints.resolve_resume(str(half), tmp_path)
    with pytest.raises(checkpoints.ResumeError, match="is a file"):
        checkpoints.resolve_resume(str(half / "model.safetensors"), tmp_path)


def _trainer(tokenizer, output_dir: Path, **overrides) -> TIDPOTrainer:
    args = config(
        output_dir.parent, output_dir=str(output_dir), max_steps=4, save_strategy="steps", save_steps=2,
        learning_rate=5e-2, anchor_max_new_tokens=4, **overrides,
    )  # fmt: skip
    return TIDPOTrainer(
        model=make_model(tokenizer, seed=1), ref_model=make_model(tokenizer, seed=0), args=args,
        train_dataset=sentiment_pairs(8), processing_class=tokenizer,
    )  # fmt: skip


def test_checkpoints_are_marked_and_resume_is_exact(tokenizer, tmp_path):
    """2 steps, a checkpoint, 2 more, against 4 uninterrupted: the same parameters (triplet and KL on: the data
    order, the anchors' random state, the optimiser and the scheduler all come back)."""
    whole = _trainer(tokenizer, tmp_path / "whole")
    assert whole.args.triplet_weight > 0 and whole.args.kl_weight > 0
    whole.train()
    saved = sorted(p.name for p in (tmp_path / "whole").iterdir())
    assert "checkpoint-2" in saved and "checkpoint-4" in saved and checkpoints.STAGING not in saved
    for step in (2, 4):
        assert checkpoints.problem(tmp_path / "whole" / f"checkpoint-{step}") is None
    (tmp_path / "resumed").mkdir()
    shutil.copytree(tmp_path / "whole" / "checkpoint-2", tmp_path / "resumed" / "checkpoint-2")
    resumed = _trainer(tokenizer, tmp_path / "resumed")
    resumed.train(resume_from_checkpoint=True)
    assert resumed.state.global_step == 4
    expected = param_snapshot(whole.model)
    for name, value in param_snapshot(resumed.model).items():
        torch.testing.assert_close(value, expected[name], atol=1e-6, rtol=0, msg=name)
    untrained = param_snapshot(make_model(tokenizer, seed=1))
    assert any(not torch.equal(value, untrained[name]) for name, value in expected.items())  # it did train


def test_an_interrupted_save_leaves_no_checkpoint_under_its_name(tokenizer, tmp_path, monkeypatch):
    out = tmp_path / "run"
    trainer = _trainer(tokenizer, out)

    def killed(folder, step):
        if step == 4:
            raise KeyboardInterrupt  # the process dies before the marker is written
        return original(folder, step)

    original = checkpoints.write_marker
    monkeypatch.setattr(checkpoints, "write_marker", killed)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert not (out / "checkpoint-4").exists() and (out / checkpoints.STAGING / "checkpoint-4").is_dir()
    monkeypatch.setattr(checkpoints, "write_marker", original)
    again = _trainer(tokenizer, out)
    assert checkpoints.resolve_resume(True, out) == str(out / "checkpoint-2")
    again.train(resume_from_checkpoint=True)
    assert not (out / checkpoints.STAGING).exists()  # the half-written one was cleared
    assert checkpoints.problem(out / "checkpoint-4") is None and again.state.global_step == 4


def test_metrics_jsonl_holds_each_step_once_after_resume(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": s, "loss": 1.0 / s}) for s in range(1, 6)]
    path.write_text("\n".join(lines) + "\n" + '{"step": 6, "lo')  # the last line cut by a kill
    callback = MetricsJsonlCallback(path, append=True)
    state = SimpleNamespace(is_world_process_zero=True, global_step=3, epoch=0.5)
    callback.on_train_begin(None, state, None)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3]
    callback.on_log(None, SimpleNamespace(**{**vars(state), "global_step": 4}), None, logs={"loss": 0.2})
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3, 4]


def test_resuming_with_other_settings_names_them(tokenizer, tmp_path, caplog):
    out = tmp_path / "run"
    first = _trainer(tokenizer, out)
    first.train()
    recorded = json.loads((out / "checkpoint-2" / "tidpo_config.json").read_text())
    assert recorded["beta"] == first.args.beta and recorded["learning_rate"] == 5e-2
    assert "tidpo_config.json" in json.loads((out / "checkpoint-2" / checkpoints.MARKER).read_text())["files"]
    shutil.rmtree(out / "checkpoint-4")
    caplog.clear()
    _trainer(tokenizer, out).train(resume_from_checkpoint=True)  # the same settings: nothing to say
    assert "resuming from" in caplog.text and "differ from its run" not in caplog.text
    shutil.rmtree(out / "checkpoint-4")
    _trainer(tokenizer, out, beta=0.3, seed=7).train(resume_from_checkpoint=True)
    assert f"beta: {first.args.beta!r} -> 0.3" in caplog.text and f"seed: {first.args.seed} -> 7" in caplog.text


def test_a_new_start_removes_the_temporaries_of_interrupted_writes(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".README.4242.partial.md").write_text("# cut sh")  # what a kill inside tidpo.files.write_text leaves
    (out / ".mine.partial").write_text("a user's file")  # not of tidpo's pattern: kept
    checkpoints.clear_staging(out)
    assert sorted(p.name for p in out.iterdir()) == [".mine.partial"]
