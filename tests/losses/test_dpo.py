"""Token-weighted DPO with the TDPO KL term (Eqs. 9–12, docs/method.md §3): hand numbers and its identities."""

import math

import pytest
import torch
from torch.testing import assert_close

from tidpo.losses import preference_loss, sequence_kl, weighted_logratio
from tidpo.ops import per_token_kl, per_token_logps


def test_plain_dpo_hand_number():
    """β = .1, chosen ρ-sum 2, rejected −1: −log σ(.1·(2 − (−1))) = log(1 + e^-.3) = 0.5543552444685271."""
    loss = preference_loss(torch.tensor([2.0]), torch.tensor([-1.0]), beta=0.1)
    assert_close(loss, torch.tensor([0.5543552444685271]))


def test_all_ones_weights_give_standard_dpo():
    """Weights = completion mask, α = 0 → −log σ(β((Σπ_w − Σr_w) − (Σπ_l − Σr_l))) summed over response tokens."""
    g = torch.Generator().manual_seed(0)
    pol_w, ref_w, pol_l, ref_l = (torch.randn(2, 6, generator=g) for _ in range(4))
    mask_w = torch.tensor([[0, 0, 1, 1, 1, 0], [0, 1, 1, 1, 1, 1]])
    mask_l = torch.tensor([[0, 0, 1, 1, 0, 0], [0, 1, 1, 1, 1, 0]])
    chosen = weighted_logratio(pol_w, ref_w, mask_w.float())
    rejected = weighted_logratio(pol_l, ref_l, mask_l.float())
    expected = -torch.nn.functional.logsigmoid(
        0.1 * (((pol_w - ref_w) * mask_w).sum(-1) - ((pol_l - ref_l) * mask_l).sum(-1))
    )
    assert_close(preference_loss(chosen, rejected, beta=0.1), expected)


def test_weighted_logratio_hand_example():
    """Prompt token weight 0 (ρ = 9 ignored); response w = [.5, 1.5], ρ = [2, 4] → .5·2 + 1.5·4 = 7."""
    policy = torch.tensor([[10.0, -1.0, -2.0]])
    ref = torch.tensor([[1.0, -3.0, -6.0]])
    assert_close(weighted_logratio(policy, ref, torch.tensor([[0.0, 0.5, 1.5]])), torch.tensor([7.0]))


def test_policy_equals_reference_gives_log2_for_any_weights():
    """π_θ = π_ref → every ρ = 0 → Δr = 0 and SeqKL = 0 → z = 0 → loss = −log σ(0) = log 2, any weights, any α."""
    logps = torch.randn(3, 5)
    weights_w, weights_l = torch.rand(3, 5) * 3, torch.rand(3, 5) * 3
    zero_kl = torch.zeros(3)
    for kl_weight in (0.0, 0.5, 1.0):
        loss = preference_loss(
            weighted_logratio(logps, logps.clone(), weights_w),
            weighted_logratio(logps, logps.clone(), weights_l),
            beta=0.1,
            chosen_kl=zero_kl,
            rejected_kl=zero_kl,
            kl_weight=kl_weight,
        )
        assert_close(loss, torch.full((3,), math.log(2)))


def test_sequence_kl_zero_when_policy_equals_reference():
    """SeqKL(x, u) = Σ_response KL(π_ref ‖ π_θ) = 0 when both produce the same logits."""
    logits = torch.randn(2, 6, 9)
    completion = torch.tensor([[0, 0, 1, 1, 1, 1], [0, 1, 1, 1, 0, 0]])
    assert_close(sequence_kl(per_token_kl(logits, logits.clone()), completion), torch.zeros(2))


def test_sequence_kl_sums_response_positions_only():
    """Per-token KL [9, 9, .5, .25, 9] with response mask [0, 0, 1, 1, 0] → .75."""
    kl = torch.tensor([[9.0, 9.0, 0.5, 0.25, 9.0]])
    assert_close(sequence_kl(kl, torch.tensor([[0, 0, 1, 1, 0]])), torch.tensor([0.75]))


def test_tdpo2_stop_gradient_on_chosen_kl():
    """TDPO2 (chosen_kl detached), β = .1, α = .5, ρ-sums 2 / −1, SeqKL_w = .4, SeqKL_l = 1:
    z = 3 − .5·(1 − .4) = 2.7; ∂L/∂SeqKL_l = αβσ(−βz) = .05·σ(−.27) = 0.021645354751727287; chosen: none."""
    chosen_kl = torch.tensor([0.4], requires_grad=True)
    rejected_kl = torch.tensor([1.0], requires_grad=True)
    loss = preference_loss(
        torch.tensor([2.0]), torch.tensor([-1.0]), 0.1, chosen_kl.detach(), rejected_kl, kl_weight=0.5
    )
    loss.sum().backward()
    assert chosen_kl.grad is None
    assert_close(rejected_kl.grad, torch.tensor([0.021645354751727287]))
    assert_close(loss, torch.tensor([0.5672321351223193]))  # log(1 + e^-.27)


def test_tdpo1_hand_number_and_gradients():
    """TDPO1 (α = 1, no detach), same numbers: z = 3 − (1 − .4) = 2.4, L = log(1 + e^-.24) = 0.5803299666264259;
    ∂L/∂SeqKL_l = β σ(−.24) = 0.044028635073280704 and ∂L/∂SeqKL_w = −0.044028635073280704."""
    chosen_kl = torch.tensor([0.4], requires_grad=True)
    rejected_kl = torch.tensor([1.0], requires_grad=True)
    loss = preference_loss(torch.tensor([2.0]), torch.tensor([-1.0]), 0.1, chosen_kl, rejected_kl, kl_weight=1.0)
    loss.sum().backward()
    assert_close(loss, torch.tensor([0.5803299666264259]))
    assert_close(rejected_kl.grad, torch.tensor([0.044028635073280704]))
    assert_close(chosen_kl.grad, torch.tensor([-0.044028635073280704]))


def test_kl_weight_without_kl_tensors_raises():
    """α ≠ 0 needs both SeqKL tensors; omitting them is an error, not a silent α = 0."""
    with pytest.raises(ValueError, match="chosen_kl"):
        preference_loss(torch.tensor([1.0]), torch.tensor([0.0]), beta=0.1, kl_weight=0.5)


def test_per_token_logps_into_dpo_match_dpo_log_ratios():
    """End to end on logits: DPO's log-ratio Σ_response (log π_θ − log π_ref) from per_token_logps + weights = mask."""
    g = torch.Generator().manual_seed(1)
    pol, ref = torch.randn(1, 4, 5, generator=g), torch.randn(1, 4, 5, generator=g)
    ids, mask = torch.tensor([[2, 0, 3, 1]]), torch.tensor([[0, 0, 1, 1]])
    expected = sum(
        torch.log_softmax(pol[0, i - 1], -1)[ids[0, i]] - torch.log_softmax(ref[0, i - 1], -1)[ids[0, i]]
        for i in (2, 3)
    )
    got = weighted_logratio(per_token_logps(pol, ids), per_token_logps(ref, ids), mask.float())
    assert_close(got, expected.reshape(1))


def test_the_kl_term_owns_the_tdpo2_stop_gradient():
    """α (SeqKL_l − SeqKL_w) with α = .5, SeqKL_w = 2, SeqKL_l = 3 → .5; TDPO2 sends no gradient to the chosen side,
    TDPO1 sends −α and +α; 'none' is 0."""
    from tidpo.losses import tdpo_kl_term

    for mode, chosen_grad in (("tdpo2", None), ("tdpo1", -0.5)):
        chosen, rejected = torch.tensor([2.0], requires_grad=True), torch.tensor([3.0], requires_grad=True)
        term = tdpo_kl_term(chosen, rejected, mode, 0.5)
        assert_close(term, torch.tensor([0.5]))
        term.sum().backward()
        assert_close(rejected.grad, torch.tensor([0.5]))
        assert chosen.grad is None if chosen_grad is None else torch.equal(chosen.grad, torch.tensor([chosen_grad]))
    assert tdpo_kl_term(None, None, "none", 0.5).item() == 0.0
    with pytest.raises(ValueError, match="needs both sequential KLs"):
        tdpo_kl_term(None, torch.tensor([1.0]), "tdpo2", 0.5)


def test_base_loss_with_the_tdpo2_term_by_hand():
    """Δr = 2 − (−1) = 3, term = .5 (3 − 2) = .5, z = 2.5, β = .1: L = −log σ(.25) = log(1 + e^−.25) ≈ .57593."""
    from tidpo.losses import ti_dpo_base_loss

    loss = ti_dpo_base_loss(torch.tensor([2.0]), torch.tensor([-1.0]), 0.1, torch.tensor([2.0]),
                            torch.tensor([3.0]), "tdpo2", 0.5)  # fmt: skip
    assert_close(loss, torch.tensor([0.57593]), atol=1e-5, rtol=0)
