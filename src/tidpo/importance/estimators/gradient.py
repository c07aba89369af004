"""``gradient``: the ablation "no prior", Eq. 8 with ``λ = 1`` (the attribution alone)."""

from tidpo.importance.estimator import Estimator
from tidpo.importance.estimators.hybrid import attribution_scores

ESTIMATOR = Estimator(
    "gradient",
    "hybrid",
    attribution_scores,
    "λ = 1",
    frozenset({"attributions"}),
    mix=1.0,
    rank=1,
)
