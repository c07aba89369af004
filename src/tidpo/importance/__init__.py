"""Token importance for TI-DPO (arXiv 2505.19653v3, Eqs. 5–8): gradient attribution, Gaussian prior, hybrid weights."""

from tidpo.importance.attribution import attribution_target, embedding_attributions, separate_attributions
from tidpo.importance.prior import gaussian_prior
from tidpo.importance.weights import (
    ESTIMATORS,
    NORMS,
    SPANS,
    hybrid_token_weights,
    needs_attribution,
    token_weights,
)

__all__ = [
    "ESTIMATORS",
    "NORMS",
    "SPANS",
    "attribution_target",
    "embedding_attributions",
    "gaussian_prior",
    "hybrid_token_weights",
    "needs_attribution",
    "separate_attributions",
    "token_weights",
]
