"""``apo_zero``: APO-zero, raise the chosen reward and lower the rejected one: ``1 − σ(r_w) + σ(r_l)``."""

import torch

from tidpo.losses.loss_type import LossType


def apo_zero(t, s):
    return 1 - torch.sigmoid(s.beta * t.chosen_logratio) + torch.sigmoid(s.beta * t.rejected_logratio)


LOSS = LossType("apo_zero", apo_zero, "logratios", "APO-zero")
