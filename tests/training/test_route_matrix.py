"""Every valid combination of engineering routes gives the naive route's step.

Routes (``trainer.routes``): head (chunked | full logits) × layout (whole rows | packed rows | shared prompt) ×
attribution (fused | separate) × reference (live | cached) × anchor backward (joint | deferred).

Invalid combinations, and why:
- shared prompt with full logits: the continuation of the prompts' key/value cache hands back hidden states, and
  only the chunked head reads those;
- shared prompt with packed rows: packed rows have no per-row cache to continue;
- a cached reference with anchors (or the KL): anchors are new every step and the KL needs the reference's full
  distributions, so the cache is only for ``kl_mode="none"`` and γ = 0, where there is no anchor backward.

That leaves 5 head × layout pairs × 2 attributions × (2 anchor backwards with the live reference + 1 cached
reference without anchors) = 30 combinations. Each runs one SGD step of a tiny Llama on pairs of varied lengths
(so packing packs) and is compared with the naive route of the same objective (full logits, padded whole rows,
separate attribution, live reference, joint anchors) to 1e-5 on the loss, every logged metric and every
parameter: 29 comparisons, against 2 naive runs (with anchors and the KL, and reference-free).
"""

from __future__ import annotations

import itertools

import pytest
import torch

from tests.tiny import make_tokenizer
from tests.training.helpers import one_sgd_step, param_snapshot, varied_pairs

HEAD_LAYOUTS = [("chunked", "whole rows"), ("chunked", "packed rows"), ("chunked", "shared prompt"),
                ("full logits", "whole rows"), ("full logits", "packed rows")]  # fmt: skip
ATTRIBUTIONS = ("fused", "separate")
WITH_ANCHORS = {"triplet_weight": 5.0, "triplet_margin": 0.5}  # a large hinge: the anchors' gradient counts
REFERENCE_FREE = {"kl_mode": "none", "triplet_weight": 0.0}
COMBINATIONS = [
    *(
        (h, lay, a, "live", b)
        for (h, lay), a, b in itertools.product(HEAD_LAYOUTS, ATTRIBUTIONS, ("joint", "deferred"))
    ),
    *((h, lay, a, "cached", "none") for (h, lay), a in itertools.product(HEAD_LAYOUTS, ATTRIBUTIONS)),
]
NAIVE = {"live": ("full logits", "whole rows", "separate", "live", "joint"),
         "cached": ("full logits", "whole rows", "separate", "live", "none")}  # fmt: skip


def _options(head, layout, attribution, reference, anchor_backward) -> dict:
    options = {
        "chunked_logits": head == "chunked",
        "padding_free": layout == "packed rows",
        "share_prompt": layout == "shared prompt",
        "attribution": attribution,
        "precompute_ref_log_probs": reference == "cached",
        **(REFERENCE_FREE if anchor_backward == "none" else {**WITH_ANCHORS, "anchor_backward": anchor_backward}),
    }
    return options


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One step per combination (and the naive ones), cached reference log-probs in a temporary cache."""
    tokenizer, cache = make_tokenizer(), tmp_path_factory.mktemp("cache")
    results = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIDPO_CACHE", str(cache))
        for routes in {*COMBINATIONS, *NAIVE.values()}:
            trainer, _ = one_sgd_step(
                tokenizer, tmp_path_factory.mktemp("run"), data=varied_pairs(4), **_options(*routes)
            )
            resolved = trainer.routes
            assert (resolved.head, resolved.layout, resolved.attribution, resolved.reference,
                    resolved.anchor_backward) == routes  # fmt: skip
            assert resolved.fallbacks == ()
            results[routes] = trainer.state.log_history[0], param_snapshot(trainer.model)
    return results


def test_the_matrix_has_thirty_combinations_and_no_invalid_one():
    assert len(COMBINATIONS) == len(set(COMBINATIONS)) == 30
    assert not any(head == "full logits" and layout == "shared prompt" for head, layout, *_ in COMBINATIONS)
    assert all(backward == "none" for *_, reference, backward in COMBINATIONS if reference == "cached")


def test_the_naive_step_exercises_anchors_and_weights(runs):
    log, _ = runs[NAIVE["live"]]
    assert log["triplet/loss"] > 0 and log["weights/max"] > 1.0 and log["kl/rejected"] != 0


@pytest.mark.parametrize("routes", [c for c in COMBINATIONS if c not in NAIVE.values()], ids=" / ".join)
def test_every_route_combination_equals_the_naive_route(runs, routes):
    naive_log, naive_params = runs[NAIVE[routes[3]]]
    log, params = runs[routes]
    keys = {k for k in naive_log if not k.startswith("time/")}
    assert keys == {k for k in log if not k.startswith("time/")}
    for key in sorted(keys):
        assert log[key] == pytest.approx(naive_log[key], abs=1e-5), key
    for name, value in params.items():
        torch.testing.assert_close(value, naive_params[name], atol=1e-5, rtol=0, msg=name)


def test_a_routes_record_names_only_known_routes():
    from tidpo.training.routes import Routes

    with pytest.raises(ValueError, match="Routes.layout='packed' is not one of"):
        Routes("chunked", "packed", "fused", "live", "joint")
