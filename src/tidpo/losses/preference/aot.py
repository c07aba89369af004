"""``aot``: AOT (paired): the batch's policy log-prob gaps ``Σ w log π_θ(y_w) − Σ w log π_θ(y_l)`` and the
reference's, each sorted, matched rank by rank, and the smoothed sigmoid loss taken of their difference ``δ``:
``(1 − ε) · (−log σ(βδ)) + ε · (−log σ(−βδ))``. The rows of the result are ranks, not pairs."""

import torch
import torch.nn.functional as F

from tidpo.losses.loss_type import LossType


def smoothed_sigmoid(delta, s):
    x, eps = s.beta * delta, s.label_smoothing
    return -F.logsigmoid(x) * (1 - eps) - F.logsigmoid(-x) * eps


def aot(t, s):
    chosen, rejected, ref_chosen, ref_rejected = t.weighted_logps
    policy_gaps = torch.sort(chosen - rejected, dim=0).values
    ref_gaps = torch.sort(ref_chosen - ref_rejected, dim=0).values
    return smoothed_sigmoid(policy_gaps - ref_gaps, s)


LOSS = LossType("aot", aot, "logps", "AOT, paired", sorts=True)
