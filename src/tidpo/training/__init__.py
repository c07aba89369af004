"""Training: ``TIDPOConfig`` and ``TIDPOTrainer`` (imports transformers)."""

from tidpo.training.config import TIDPOConfig
from tidpo.training.trainer import TIDPOTrainer

__all__ = ["TIDPOConfig", "TIDPOTrainer"]
