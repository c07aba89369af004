"""The Trainer hooks that make every save whole or absent (the helpers and the reasons: :mod:`.checkpoints`).

:class:`StagedSaves` is mixed into ``TIDPOTrainer`` ahead of ``transformers.Trainer``:

- ``train``: ``resume_from_checkpoint`` resolves to a complete checkpoint only; what an interrupted save left is
  removed first, and a resume with other settings than the checkpoint's run says which changed;
- ``_save_checkpoint``: the Trainer writes into ``.tidpo-partial/checkpoint-N`` (``_get_output_dir`` points there
  while it does), the run's settings are added, every process waits, the marker is written and the folder renamed,
  then old checkpoints are rotated in the real folder;
- ``save_model`` (a call of one's own, not a checkpoint's): the model, its card, ``metrics.jsonl`` and the curves
  go into ``.tidpo-partial/model``, then their files move into the folder, the weights last.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from tidpo.training import checkpoints

logger = logging.getLogger("tidpo")


class StagedSaves:
    """Checkpoints and the final model written whole or not at all (mixed into a ``transformers.Trainer``)."""

    _staging_dir: str | None = None

    def train(self, resume_from_checkpoint=None, trial=None, **kwargs):
        """``Trainer.train``; ``resume_from_checkpoint`` (True for the last one) only takes a complete checkpoint,
        and a checkpoint left half-written by an interrupted save is removed first."""
        resume = checkpoints.resolve_resume(resume_from_checkpoint, self.args.output_dir)
        if self.is_world_process_zero():
            checkpoints.clear_staging(self.args.output_dir)
            if resume is not None:
                _warn_changed_settings(Path(resume), self.args)
        self.accelerator.wait_for_everyone()
        return super().train(resume_from_checkpoint=resume, trial=trial, **kwargs)

    def _get_output_dir(self, trial) -> str:
        return self._staging_dir if self._staging_dir is not None else super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial) -> None:
        """``Trainer._save_checkpoint`` into ``.tidpo-partial``, then the marker and the rename (every process has
        written its part first), then the rotation of old checkpoints in the real folder."""
        run_dir = Path(super()._get_output_dir(trial))
        name = f"checkpoint-{self.state.global_step}"
        staged = run_dir / checkpoints.STAGING / name
        if self.is_world_process_zero() and staged.exists():
            shutil.rmtree(staged)
        self.accelerator.wait_for_everyone()
        self._staging_dir = str(run_dir / checkpoints.STAGING)
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging_dir = None
        if self.args.should_save:  # the run's settings, compared when a run resumes from here
            from tidpo.training.outputs import RESUME_SETTINGS, write_trained_settings

            write_trained_settings(staged, self.args, RESUME_SETTINGS)
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            self._publish_checkpoint(staged, run_dir, name)
        self.accelerator.wait_for_everyone()

    def _publish_checkpoint(self, staged: Path, run_dir: Path, name: str) -> None:
        """The best-model record, the marker and the rename of a staged checkpoint, then the rotation."""
        from transformers.trainer_utils import rotate_checkpoints

        best = self.state.best_global_step
        if best and ((run_dir / f"checkpoint-{best}").exists() or best == self.state.global_step):
            self.state.best_model_checkpoint = str(run_dir / f"checkpoint-{best}")
            self.state.save_to_json(str(staged / "trainer_state.json"))
        checkpoints.publish(staged, run_dir / name, self.state.global_step)
        rotate_checkpoints(
            output_dir=str(run_dir),
            save_total_limit=self.args.save_total_limit,
            best_model_checkpoint=self.state.best_model_checkpoint,
            use_mtime=False,
        )

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        """``Trainer.save_model``; a call of one's own (not a checkpoint's) also writes the model card
        ``README.md``, ``metrics.jsonl`` and ``training_curves.png`` (:mod:`tidpo.training.outputs`), and an
        ``adapter_config.json`` that names its base portably. That call writes into ``.tidpo-partial/model``
        first and then moves the files into ``output_dir`` (the weights last), so a kill while the model is
        written leaves ``output_dir`` as it was."""
        if _internal_call:
            return super().save_model(output_dir, _internal_call)
        from tidpo.training.outputs import write_run_files

        folder = Path(output_dir or self.args.output_dir)
        staged = folder / checkpoints.STAGING / "model"
        if self.is_world_process_zero() and staged.exists():  # left by a save of this process that failed
            shutil.rmtree(staged)
        super().save_model(str(staged), _internal_call=True)
        if self.is_world_process_zero():
            write_run_files(self, staged, metrics_dir=folder)
            checkpoints.publish_files(staged, folder)
        if self.args.push_to_hub:  # as Trainer.save_model does, once the files are in place
            self.push_to_hub(commit_message="Model save", revision=self.args.hub_revision)


def _warn_changed_settings(checkpoint: Path, args) -> None:
    from tidpo.training.outputs import changed_settings

    changed = changed_settings(checkpoint, args)
    if changed:
        logger.warning(
            f"resuming from {checkpoint} with settings that differ from its run ({'; '.join(changed)}): "
            "the run goes on with the new ones, and is no longer the run it would have been"
        )
