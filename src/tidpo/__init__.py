"""tidpo: Token-Importance Guided Direct Preference Optimization (TI-DPO, arXiv 2505.19653v3).

``import tidpo`` stays light: the math (``tidpo.ops``, ``tidpo.importance``, ``tidpo.losses``) imports torch
only; the trainer and data layers (which import transformers and datasets) load on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "TIDPOConfig": "tidpo.training.config",
    "TIDPOTrainer": "tidpo.training.trainer",
    "LogCompletionsCallback": "tidpo.training.callbacks",
    "load_preference_data": "tidpo.data",
    "tokenize_preference_dataset": "tidpo.data",
    "PreferenceCollator": "tidpo.data",
    "PreferenceDataError": "tidpo.data",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tidpo' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
