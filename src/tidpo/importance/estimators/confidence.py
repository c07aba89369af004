"""``confidence`` (beyond the paper; in the spirit of ConfPO): the tokens the policy is least sure
of. A response token scores 1 when its log-probability is below the log of the response's mean token probability,
``log π(y_t) < log((1/T) Σ_s π(y_s))``, else 0; the scores are ``I`` of Eq. 8, mixed with the Gaussian prior by
``λ = importance_mix`` (a row whose tokens are all equally likely scores none and keeps the prior). It needs no
attribution backward: only the policy's per-token log-probs, which the step already has."""

import torch

from tidpo.importance.estimator import Estimator, EstimatorInputs


def low_confidence(x: EstimatorInputs) -> torch.Tensor:
    logps = x.need("policy_logps", "confidence").float()
    response = x.completion_mask.bool()
    count = response.sum(-1, keepdim=True).clamp(min=1)
    probs = torch.where(response, logps.exp(), torch.zeros_like(logps))
    threshold = torch.log(probs.sum(-1, keepdim=True) / count)  # log of the mean token probability
    return (response & (logps < threshold)).float()


ESTIMATOR = Estimator(
    "confidence",
    "hybrid",
    low_confidence,
    "Eq. 8 with the tokens less likely than the response's mean token probability as the scores",
    frozenset({"policy_logps"}),
    rank=7,
)
