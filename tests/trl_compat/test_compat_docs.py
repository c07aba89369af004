"""docs/trl.md lists every argument of TRL's DPOTrainer, and TIDPOTrainer takes each by the same name."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import trl
from transformers import Trainer

from tidpo import TIDPOTrainer

DOC = Path(__file__).resolve().parents[2] / "docs" / "trl.md"


def _dpo_trainer_arguments() -> list[str]:
    return [name for name in inspect.signature(trl.DPOTrainer.__init__).parameters if name != "self"]


def test_every_dpo_trainer_argument_is_documented():
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Every `DPOTrainer` argument") : text.index("## Command line")]
    documented = {
        name for cell in re.findall(r"^\| ([^|]+) \|", section, flags=re.M) for name in re.findall(r"`(\w+)`", cell)
    }
    assert sorted(set(_dpo_trainer_arguments()) - documented) == []


def test_every_dpo_trainer_argument_is_taken_by_name():
    ours = set(inspect.signature(TIDPOTrainer.__init__).parameters)
    trainer = set(inspect.signature(Trainer.__init__).parameters)  # reached through **kwargs
    assert sorted(set(_dpo_trainer_arguments()) - ours - trainer) == []
