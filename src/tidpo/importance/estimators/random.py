"""``random``: the ablation "random weights", uniform noise on the response, normalised there."""

import torch

from tidpo.importance.estimator import Estimator, EstimatorInputs


def noise(x: EstimatorInputs) -> torch.Tensor:
    response = x.completion_mask.bool()
    return torch.rand(response.shape, generator=x.generator, device=response.device)


ESTIMATOR = Estimator("random", "response", noise, "ablation", rank=4)
