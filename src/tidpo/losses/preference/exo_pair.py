"""``exo_pair``: EXO's pairwise loss, the KL from the model's two-way preference ``(σ(βz), σ(−βz))`` to the
smoothed label ``(1 − ε, ε)`` (ε = ``label_smoothing`` > 0)."""

import math

import torch
import torch.nn.functional as F

from tidpo.losses.loss_type import LossType


def exo_pair(t, s):
    x, eps = s.beta * t.margin, s.label_smoothing
    win = torch.sigmoid(x) * (F.logsigmoid(x) - math.log1p(-eps))
    lose = torch.sigmoid(-x) * (F.logsigmoid(-x) - math.log(eps))
    return win + lose


LOSS = LossType("exo_pair", exo_pair, "margin", "EXO (label_smoothing = ε > 0)", kl=True, f_divergence=True)
