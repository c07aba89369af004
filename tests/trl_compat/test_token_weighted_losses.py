"""Each loss of the table over non-uniform token weights, against numbers worked out by hand from the weighted
log-ratios ``Σ_t w_t ρ_t`` (docs/method.md §3b): two pairs, β = 0.5, the reference's log-prob −1 on every response
token, so the policy's is ``ρ − 1``.

    pair 0  chosen   ρ = (0.5, −1, 2)    w = (2, 0.5, 0)   Σwρ = 0.5   (uniform: 1.5)
            rejected ρ = (1, 1, −2)      w = (0, 1, 2)     Σwρ = −3    (uniform: 0)
    pair 1  chosen   ρ = (−0.5, 1, 0)    w = (1, 1, 1)     Σwρ = 0.5
            rejected ρ = (0.2, 0.3)      w = (3, 1)        Σwρ = 0.9   (uniform: 0.5)
"""

import math

import pytest
import torch

from tidpo.losses.kl_modes import tdpo_kl_term
from tidpo.losses.loss_family import LossFamily, length_desensitized
from tidpo.losses.loss_type import LossSettings
from tidpo.losses.preference import LOSS_TYPES

BETA, EPS, TAU = 0.5, 0.1, 0.05
RHO = [[0.5, -1, 2], [-0.5, 1, 0], [1, 1, -2], [0.2, 0.3, 0]]  # chosen rows, then rejected rows
WEIGHTS = [[2, 0.5, 0], [1, 1, 1], [0, 1, 2], [3, 1, 0]]
MASK = [[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 0]]
C, R = (0.5, 0.5), (-3.0, 0.9)  # Σ w ρ, by hand from the table above
TC, TR = (3, 3), (3, 2)  # response tokens


def ls(x):  # log σ(x)
    return -math.log1p(math.exp(-x))


def sg(x):  # σ(x)
    return 1 / (1 + math.exp(-x))


def _mean(values):
    return sum(values) / len(values)


def _smoothed(delta):
    return -ls(BETA * delta) * (1 - EPS) - ls(-BETA * delta) * EPS


# per pair i: the loss from the hand-computed c = C[i], r = R[i] (each TRL formula, written out)
HAND = {
    "sigmoid": lambda i: -ls(BETA * (C[i] - R[i])),
    "hinge": lambda i: max(0.0, 1 - BETA * (C[i] - R[i])),
    "ipo": lambda i: (C[i] / TC[i] - R[i] / TR[i] - 1 / (2 * BETA)) ** 2,
    "sigmoid_norm": lambda i: -ls(BETA * (C[i] / TC[i] - R[i] / TR[i])),
    "exo_pair": lambda i: (
        sg(BETA * (C[i] - R[i])) * (ls(BETA * (C[i] - R[i])) - math.log(1 - EPS))
        + sg(-BETA * (C[i] - R[i])) * (ls(-BETA * (C[i] - R[i])) - math.log(EPS))
    ),
    "robust": lambda i: (-(1 - EPS) * ls(BETA * (C[i] - R[i])) + EPS * ls(-BETA * (C[i] - R[i]))) / (1 - 2 * EPS),
    "discopop": lambda i: (
        (1 - sg(BETA * (C[i] - R[i]) / TAU)) * -ls(BETA * (C[i] - R[i]))
        + sg(BETA * (C[i] - R[i]) / TAU) * math.exp(-BETA * (C[i] - R[i]))
    ),
    "nca_pair": lambda i: -ls(BETA * C[i]) - 0.5 * ls(-BETA * C[i]) - 0.5 * ls(-BETA * R[i]),
    "bco_pair": lambda i: -ls(BETA * C[i]) - ls(-BETA * R[i]),
    "sppo_hard": lambda i: (C[i] - 1 / (2 * BETA)) ** 2 + (R[i] + 1 / (2 * BETA)) ** 2,
    "apo_zero": lambda i: 1 - sg(BETA * C[i]) + sg(BETA * R[i]),
    "apo_down": lambda i: sg(BETA * C[i]) + 1 - sg(BETA * (C[i] - R[i])),
    # sorted gaps: policy Σw(ρ−1) gaps are (0.5−2.5) − (−3−3) = 4 and (0.5−3) − (0.9−4) = 0.6; reference −Σw gaps
    # are −2.5 + 3 = 0.5 and −3 + 4 = 1; sorted: (0.6, 4) − (0.5, 1)
    "aot": lambda i: _smoothed((0.6 - 0.5, 4 - 1)[i]),
    # sorted chosen (0.5, 0.5) − sorted rejected (−3, 0.9)
    "aot_unpaired": lambda i: _smoothed((0.5 + 3, 0.5 - 0.9)[i]),
    # −Σ w (ρ − 1) over the chosen tokens / 6 tokens: Σ w ρ = 1, Σ w = 2.5 + 3
    "sft": lambda i: -(1.0 - 5.5) / 6,
}


def _inputs(weights=WEIGHTS):
    mask = torch.tensor(MASK, dtype=torch.float64)
    rho = torch.tensor(RHO, dtype=torch.float64) * mask
    w = torch.tensor(weights, dtype=torch.float64) * mask
    ref = -mask
    policy = rho + ref
    return (rho * w).sum(-1), policy, ref, w, mask


def _family(name, **kw):
    return LossFamily(names=(name,), settings=LossSettings(BETA, EPS, TAU), **kw)


def test_the_table_has_trls_fifteen_losses():
    assert set(LOSS_TYPES) == set(HAND) and len(HAND) == 15


@pytest.mark.parametrize("name", sorted(HAND))
def test_each_loss_follows_the_token_weighted_logratios(name):
    logratio, policy, ref, w, mask = _inputs()
    assert logratio.tolist() == pytest.approx([*C, *R], abs=1e-12)
    losses = _family(name)(logratio, policy, ref, w, mask)
    expected = [HAND[name](i) for i in range(2)]
    assert losses.tolist() == pytest.approx(expected, abs=1e-12)
    uniform = _inputs(MASK)
    assert losses.mean().item() != pytest.approx(_family(name)(*uniform).mean().item(), abs=1e-6)


def test_a_list_is_the_weighted_sum_per_pair():
    logratio, policy, ref, w, mask = _inputs()
    family = LossFamily(names=("sigmoid", "bco_pair", "sft"), weights=(0.8, 0.2, 1.0), settings=LossSettings(BETA))
    expected = [0.8 * HAND["sigmoid"](i) + 0.2 * HAND["bco_pair"](i) + HAND["sft"](i) for i in range(2)]
    assert family(logratio, policy, ref, w, mask).tolist() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name", [n for n, spec in LOSS_TYPES.items() if spec.kl])
def test_the_kl_term_is_subtracted_from_the_margin(name):
    """TDPO1 (α = 1): the margin is Σwρ_w − Σwρ_l − (SeqKL_l − SeqKL_w); SeqKL_w = (0.3, 0.1), SeqKL_l = (0.7, 0.2)."""
    logratio, policy, ref, w, mask = _inputs()
    seq_kl = (torch.tensor([0.3, 0.1], dtype=torch.float64), torch.tensor([0.7, 0.2], dtype=torch.float64))
    with_kl = _family(name, kl_mode="tdpo1", kl_weight=1.0)(logratio, policy, ref, w, mask, seq_kl)
    shifted = logratio + torch.tensor([0, 0, 0.4, 0.1], dtype=torch.float64)  # the rejected side carries the KL gap
    assert with_kl.tolist() == pytest.approx(_family(name)(shifted, policy, ref, w, mask).tolist(), abs=1e-12)
    assert tdpo_kl_term(*seq_kl, "tdpo1", 1.0).tolist() == pytest.approx([0.4, 0.1])


def test_ld_alpha_scales_the_weights_past_the_shared_length():
    mask = torch.tensor([[0, 1, 1, 1, 0], [0, 1, 1, 0, 0]], dtype=torch.float64)  # one pair: 3 and 2 tokens
    weights = torch.tensor([[0, 2, 1, 4, 0], [0, 1, 1, 0, 0]], dtype=torch.float64)
    out = length_desensitized(weights, mask, 0.25)
    assert out.tolist() == [[0, 2, 1, 1, 0], [0, 1, 1, 0, 0]]  # only the chosen's third token is past 2
    assert length_desensitized(weights, mask, None) is weights


@pytest.mark.parametrize(
    ("kind", "score"),
    [
        ("forward_kl", lambda u: 1 - math.exp(-u)),
        ("js_divergence", lambda u: math.log(2) + ls(u)),
        ("alpha_divergence", lambda u: (math.exp(-0.7 * u) - 1) / -0.7),
    ],
)
def test_f_divergences_score_the_weighted_logratio(kind, score):
    logratio, policy, ref, w, mask = _inputs()
    family = _family("sigmoid", f_divergence_type=kind, f_alpha_divergence_coef=0.3)
    expected = [-ls(BETA * (score(C[i]) - score(R[i]))) for i in range(2)]
    assert family(logratio, policy, ref, w, mask).tolist() == pytest.approx(expected, abs=1e-12)
