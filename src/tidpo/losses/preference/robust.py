"""``robust``: robust DPO, the sigmoid loss unbiased for labels flipped with probability ε = ``label_smoothing``:
``((1 − ε) ℓ(z) − ε ℓ(−z)) / (1 − 2ε)`` with ``ℓ(z) = −log σ(βz)``."""

import torch.nn.functional as F

from tidpo.losses.loss_type import LossType


def robust(t, s):
    x, eps = s.beta * t.margin, s.label_smoothing
    return (-(1 - eps) * F.logsigmoid(x) + eps * F.logsigmoid(-x)) / (1 - 2 * eps)


LOSS = LossType("robust", robust, "margin", "robust DPO (label_smoothing in [0, 0.5))", kl=True, f_divergence=True)
