"""Evaluation and inspection of TI-DPO models: :mod:`tidpo.eval.explain` computes each response token's TI-DPO
weight and its components (an :mod:`tidpo.eval.explanation`); :mod:`tidpo.eval.render` draws them (HTML page, PNG).

Names load on first access, so importing the package stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "BatchExplanation": "tidpo.eval.explain_batch",
    "Explanation": "tidpo.eval.explanation",
    "PairExplanation": "tidpo.eval.explanation",
    "ResponseExplanation": "tidpo.eval.explanation",
    "explain_batch": "tidpo.eval.explain_batch",
    "explain_pairs": "tidpo.eval.explain",
    "token_texts": "tidpo.eval.explain",
    "render_html": "tidpo.eval.render",
    "render_png": "tidpo.eval.render",
    "write_explanation": "tidpo.eval.render",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tidpo.eval' has no attribute {name!r}")


__all__ = list(_LAZY)
