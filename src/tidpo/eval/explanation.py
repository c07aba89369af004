"""What :func:`tidpo.eval.explain.explain_pairs` returns: per pair, each response's tokens with their TI-DPO weight
and its components (arXiv 2505.19653v3, Eqs. 5–8), and the settings that weighted them; saved and loaded as JSON.
Plain dataclasses without torch, so that rendering (:mod:`tidpo.eval.render`) and the importance scores
(:mod:`tidpo.eval.importance`) read a saved explanation without loading a model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class ResponseExplanation:
    """One response, token by token (all lists have one entry per response token, its final EOS included).

    Attributes:
        tokens: each token's decoded text, whitespace and newlines kept (joined, they give the response text).
        span_length: ``T`` of the span that ``gradient_share`` and ``prior`` are normalised over (the response,
            or prompt + response with ``weight_span="sequence"``); ``share × span_length = 1`` is an even share.
        tokens_cut: response tokens dropped by ``max_length`` truncation (not shown, not weighted).
    """

    tokens: list[str]
    token_ids: list[int]
    weights: list[float]
    gradient_share: list[float]
    prior: list[float]
    attributions: list[float]
    logps: list[float]
    span_length: int
    tokens_cut: int = 0

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    @property
    def max_weight(self) -> float:
        return max(self.weights)

    @property
    def effective_tokens(self) -> float:
        """``(Σw)² / Σw²``: how many tokens the weight spreads over (``T`` when uniform)."""
        squares = sum(w * w for w in self.weights)
        return sum(self.weights) ** 2 / squares if squares > 0 else 0.0


@dataclass
class PairExplanation:
    """One preference pair: ``row`` is its 0-based index in the dataset; ``prompt`` its decoded prompt tokens."""

    row: int
    prompt: str
    chosen: ResponseExplanation
    rejected: ResponseExplanation


@dataclass
class Explanation:
    """The pairs and the settings that weighted them (``model`` and ``dataset`` only label the output)."""

    pairs: list[PairExplanation]
    mix: float
    sigma_div: float
    span: str
    max_length: int | None
    model: str = ""
    dataset: str = ""
    # the estimator (``importance``), whether its scores ``I`` are the gradient attribution (Eqs. 5–6), and its
    # line of the estimator table; files saved before these existed were the paper's hybrid weights
    importance: str = "hybrid"
    attributed: bool = True
    scores_help: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Explanation:
        pairs = [
            PairExplanation(
                row=p["row"],
                prompt=p["prompt"],
                chosen=ResponseExplanation(**p["chosen"]),
                rejected=ResponseExplanation(**p["rejected"]),
            )
            for p in data["pairs"]
        ]
        return cls(**{**data, "pairs": pairs})

    def save_json(self, path: str | Path) -> Path:
        from tidpo.files import write_text

        return write_text(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1))

    @classmethod
    def load_json(cls, path: str | Path) -> Explanation:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
