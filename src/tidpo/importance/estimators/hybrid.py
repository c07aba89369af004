"""``hybrid``: Eq. 8, the gradient attribution (Eqs. 5–6) mixed with the Gaussian prior by ``λ = importance_mix``."""

from tidpo.importance.estimator import Estimator, EstimatorInputs, check_scores


def attribution_scores(x: EstimatorInputs) -> object:
    """The attributions as ``I``, checked (shared with ``gradient``)."""
    return check_scores(x.need("attributions", "hybrid"), x.completion_mask, "attributions")


ESTIMATOR = Estimator(
    "hybrid",
    "hybrid",
    attribution_scores,
    "Eq. 8",
    frozenset({"attributions"}),
    rank=0,
)
