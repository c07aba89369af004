"""``hinge``: SLiC's hinge on the margin, ``max(0, 1 − β z)``."""

import torch

from tidpo.losses.loss_type import LossType


def hinge(t, s):
    return torch.relu(1 - s.beta * t.margin)


LOSS = LossType("hinge", hinge, "margin", "SLiC hinge", kl=True, f_divergence=True)
