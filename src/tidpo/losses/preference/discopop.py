"""``discopop``: DiscoPOP's log-ratio modulated loss: with ``x = βz`` and ``g = σ(x/τ)``,
``(1 − g) · (−log σ(x)) + g · e^{−x}`` (τ = ``discopop_tau``)."""

import torch
import torch.nn.functional as F

from tidpo.losses.loss_type import LossType


def discopop(t, s):
    x = s.beta * t.margin
    gate = torch.sigmoid(x / s.discopop_tau)
    return (1 - gate) * -F.logsigmoid(x) + gate * torch.exp(-x)


LOSS = LossType("discopop", discopop, "margin", "DiscoPOP (discopop_tau)", kl=True, f_divergence=True)
