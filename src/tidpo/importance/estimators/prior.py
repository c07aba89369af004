"""``prior``: the ablation "prior only", Eq. 8 with ``λ = 0`` (the Gaussian prior of Eq. 7 alone)."""

import torch

from tidpo.importance.estimator import Estimator, EstimatorInputs


def no_scores(x: EstimatorInputs) -> torch.Tensor:
    return torch.zeros(x.completion_mask.shape, device=x.completion_mask.device)


ESTIMATOR = Estimator("prior", "hybrid", no_scores, "λ = 0", mix=0.0, rank=2)
