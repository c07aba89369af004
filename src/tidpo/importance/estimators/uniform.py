"""``uniform``: every response token weight 1, which is DPO's log-ratio."""

from tidpo.importance.estimator import Estimator, EstimatorInputs


def ones(x: EstimatorInputs):
    return x.completion_mask.bool().float()


ESTIMATOR = Estimator("uniform", "response", ones, "DPO", rank=3)
