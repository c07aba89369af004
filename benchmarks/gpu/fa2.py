"""Part ``flash_attn``: packed rows with FlashAttention-2 (its variable-length kernel) against padded rows, when
the ``flash_attn`` package is installed: per-token log-probs of a tiny Llama in bf16, largest difference. Without
the package (PyPI has source only, and its prebuilt wheels are far over the 64 MiB that travels) the part says
so and writes that down."""

from __future__ import annotations

from common import Report, parser

TOLERANCE = 2e-2  # bf16, per-token log-probs


def compare(report) -> int:
    import torch
    from tests.tiny import make_model, make_tokenizer
    from tests.training.helpers import collated_batch, varied_pairs

    from tidpo.training.head import FullLogitsHead
    from tidpo.training.layouts import PackedRows, PaddedRows

    tokenizer = make_tokenizer()
    model = make_model(tokenizer, seed=1).to("cuda", torch.bfloat16)
    batch = {k: v.cuda() for k, v in collated_batch(tokenizer, 4, varied_pairs).items()}
    out = {}
    for name, attn, layout in (("padded", "sdpa", PaddedRows), ("packed", "flash_attention_2", PackedRows)):
        model.set_attn_implementation(attn)
        lay = layout(FullLogitsHead(lambda m: m))
        with torch.no_grad():
            features = lay.rows_forward(model, batch["attention_mask"], input_ids=batch["input_ids"])
            stats = lay.head.token_stats(features, None, batch["input_ids"], batch["completion_mask"], with_kl=False)
        out[name] = stats.per_token_logps.float()
    diff = float((out["packed"] - out["padded"]).abs().max())
    report["max_abs_diff"], report["tolerance"] = diff, TOLERANCE
    report.line(
        f"packed rows with flash_attention_2 against padded rows with sdpa (tiny Llama, bf16): per-token "
        f"log-probs differ by at most {diff:.1e} (tolerance {TOLERANCE})."
    )
    return 0 if diff <= TOLERANCE else 1


def main() -> int:
    args = parser(__doc__).parse_args()
    report = Report(args.out, "flash_attn")
    try:
        import flash_attn  # noqa: F401
    except ImportError as err:
        report["available"] = False
        report.line(
            f"Not run: flash_attn is not installed ({err}); PyPI ships it as source only, and its prebuilt "
            "wheels do not fit the 64 MiB that travels."
        )
        return 0
    if args.cpu:
        report.line("Not run: FlashAttention-2 needs a GPU (CPU mode).")
        return 0
    report["available"] = True
    return compare(report)


if __name__ == "__main__":
    raise SystemExit(main())
