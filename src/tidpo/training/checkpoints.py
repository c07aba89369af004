"""Checkpoints that are whole or absent, and a resume that only takes whole ones.

transformers writes ``checkpoint-N`` in place, and ``get_last_checkpoint`` takes the highest-numbered folder whether
or not it was finished. tidpo writes each checkpoint into ``<output_dir>/.tidpo-partial/checkpoint-N``, waits for
every process, writes a marker file (:data:`MARKER`: the step and the size of every file) last, and only then
renames the folder to ``<output_dir>/checkpoint-N``. A kill at any moment leaves either the whole checkpoint under
its final name or a partial one under ``.tidpo-partial`` (removed at the next start). Resuming checks the marker,
and that every file it lists has its recorded size, so a checkpoint damaged later is refused as well.

The final model (``save_model``) is written into ``<folder>/.tidpo-partial/model`` too, then its files are moved
into ``<folder>`` one rename each, the weights last: a kill while it is being written leaves the folder as it was.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from pathlib import Path

from tidpo.files import is_temporary

MARKER = "tidpo_checkpoint.json"
STAGING = ".tidpo-partial"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")

logger = logging.getLogger("tidpo.training")


class ResumeError(ValueError):
    """``resume_from_checkpoint`` names nothing that can be resumed (the message says what and why)."""


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_marker(folder: Path, step: int) -> None:
    """Record ``folder``'s files and sizes in its marker, flushed to disk; the last write of a checkpoint."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MARKER:
            _fsync(path)
            files[path.relative_to(folder).as_posix()] = path.stat().st_size
    tmp = folder / (MARKER + ".tmp")
    tmp.write_text(json.dumps({"step": step, "files": files}, indent=1))
    _fsync(tmp)
    os.replace(tmp, folder / MARKER)


def problem(folder: Path) -> str | None:
    """Why ``folder`` is not a whole tidpo checkpoint, or None when it is."""
    marker = folder / MARKER
    if not marker.is_file():
        return f"no {MARKER} (its save did not finish, or it was not written by tidpo)"
    try:
        files = json.loads(marker.read_text())["files"]
    except (ValueError, KeyError, TypeError):
        return f"its {MARKER} is unreadable"
    for name, size in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, {size} when it was saved"
    return None


def checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """The ``checkpoint-N`` folders of ``output_dir``, by step."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    return sorted(found)


def last_complete(output_dir: str | Path, report=logger.warning) -> Path | None:
    """The highest-numbered whole checkpoint of ``output_dir``; each newer one that is not whole is reported."""
    for _step, folder in reversed(checkpoints(output_dir)):
        why = problem(folder)
        if why is None:
            return folder
        report(f"resume: skipping {folder}: {why}")
    return None


def resolve_resume(value, output_dir: str | Path) -> str | None:
    """``resume_from_checkpoint`` as a folder to load: None/False for a fresh start; True (or "true", "last") for
    the last whole checkpoint of ``output_dir``; a path, which must be a whole checkpoint.

    Raises:
        ResumeError: nothing to resume from, a path that does not exist, or a checkpoint that is not whole.
    """
    if value is None or value is False or (isinstance(value, str) and value.strip().lower() in ("", "false")):
        return None
    if value is True or (isinstance(value, str) and value.strip().lower() in ("true", "last")):
        folder = last_complete(output_dir)
        if folder is None:
            raise ResumeError(
                f"resume_from_checkpoint=true: {output_dir} has no complete checkpoint to resume from "
                "(save some with --save_strategy steps --save_steps N, or start without resuming)"
            )
        logger.warning(f"resuming from {folder}")
        return str(folder)
    folder = Path(value)
    if not folder.exists():
        raise ResumeError(f"resume_from_checkpoint: {folder} does not exist")
    if not folder.is_dir():
        raise ResumeError(f"resume_from_checkpoint: {folder} is a file, not a checkpoint folder")
    why = problem(folder)
    if why is not None:
        raise ResumeError(f"resume_from_checkpoint: {folder} is not a complete checkpoint: {why}")
    return str(folder)


def clear_staging(output_dir: str | Path) -> None:
    """Remove what an interrupted save left in ``<output_dir>/.tidpo-partial``, and the temporaries of
    interrupted writes (:mod:`tidpo.files`) in ``output_dir`` (main process only)."""
    root = Path(output_dir)
    for staging in sorted(root.glob(STAGING + "*")) if root.is_dir() else []:
        logger.warning(f"removing {staging}: a checkpoint or model whose save was interrupted")
        shutil.rmtree(staging, ignore_errors=True)
    for partial in sorted(root.glob(".*.partial*")) if root.is_dir() else []:
        if partial.is_file() and is_temporary(partial):
            logger.warning(f"removing {partial}: a file whose write was interrupted")
            partial.unlink(missing_ok=True)


def publish(staged: Path, final: Path, step: int) -> None:
    """Complete ``staged`` with its marker, then rename it to ``final`` (replacing a folder of the same step)."""
    write_marker(staged, step)
    if final.exists():
        old = final.with_name(f"{STAGING}-replaced-{final.name}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(staged, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, final)
    with contextlib.suppress(OSError):  # the staging folder, now empty (another process may be using it)
        staged.parent.rmdir()
    _fsync(final.parent)


# moved into place last: without them a half-moved model folder does not load at all (rather than load old weights)
_WEIGHTS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def publish_files(staged: Path, folder: Path) -> None:
    """Move every file of ``staged`` into ``folder`` (replacing files of the same name), the weights last, then
    remove ``staged``. Each move is one rename on the same file system."""
    files = sorted(
        (path for path in staged.rglob("*") if path.is_file()),
        key=lambda path: (path.suffix in _WEIGHTS_SUFFIXES, path.as_posix()),
    )
    for path in files:
        _fsync(path)
    for path in files:
        target = folder / path.relative_to(staged)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    shutil.rmtree(staged, ignore_errors=True)
    with contextlib.suppress(OSError):  # the staging folder, now empty
        staged.parent.rmdir()
    _fsync(folder)
