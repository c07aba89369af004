"""Data shipped inside the package: the built-in sentiment preference set (``demo``), written by
``tidpo data sentiment`` (see ``tidpo.tasks.sentiment``)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
# name -> folder holding {split}.jsonl
BUILTIN_DATASETS = {"demo": HERE / "sentiment"}


def builtin_dataset_path(name: str, split: str = "train") -> Path:
    """``<folder>/<split>.jsonl`` of a built-in dataset (``split`` is ``train`` or ``test``)."""
    if name not in BUILTIN_DATASETS:
        raise ValueError(f"unknown built-in dataset {name!r}; known: {', '.join(BUILTIN_DATASETS)}")
    return BUILTIN_DATASETS[name] / f"{split}.jsonl"
