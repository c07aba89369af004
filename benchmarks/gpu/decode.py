"""Part ``decode``: the anchors' decode routes (dynamic, static, graph) at speed.py's shape: seconds per draw of
64 tokens for 4 prompts, tokens equal to the dynamic loop's (and to ``generate``'s) under a seed, and the draw
against the DPO step that speed.py measured in the same run (``speed.json``)."""

from __future__ import annotations

import json
import statistics
import time

from common import Report, device, parser, qwen, sync


def timed(dev, fn, repeats: int):
    out, times = None, []
    for _ in range(repeats):
        sync(dev)
        start = time.perf_counter()
        import torch

        torch.manual_seed(0)
        out = fn()
        sync(dev)
        times.append(time.perf_counter() - start)
    return out, statistics.median(times[1:] if len(times) > 1 else times)


def main() -> int:
    args = parser(__doc__).parse_args()
    import torch
    from transformers import GenerationConfig

    dev = device(args.cpu)
    shape, dtype = ("tiny", torch.float32) if args.cpu else ("qwen2.5-0.5b", torch.bfloat16)
    rows, width, new = (2, 16, 8) if args.cpu else (4, 256, 64)
    report = Report(args.out, "decode", shape=shape, dtype=str(dtype), prompts=rows, prompt_len=width, new=new)
    model = qwen(shape, dtype, dev).eval()
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab - 2, (rows, width), generator=g).to(dev)
    mask = torch.ones_like(ids)
    mask[0, : width // 4] = 0  # one left-padded prompt
    config = GenerationConfig(
        do_sample=True,
        top_k=50,
        top_p=0.95,
        temperature=0.9,
        max_new_tokens=new,
        eos_token_id=vocab - 1,
        pad_token_id=vocab - 2,
    )
    every = measure(report, model, ids, mask, config, dev, ["dynamic", "static"] + ([] if args.cpu else ["graph"]))
    step = dpo_step(args.out)
    report["dpo_step_s"] = step
    report.line(
        f"{shape} ({str(dtype).removeprefix('torch.')}), {rows} prompts of {width} tokens, {new} new "
        f"tokens sampled (top-k 50, top-p 0.95), median of 2 draws after one:"
    )
    table(report, every, step, new)
    return 0 if all(r["equal_to_dynamic"] for r in every) else 1


def measure(report, model, ids, mask, config, dev, routes) -> list[dict]:
    """Each route's seconds per draw and whether its tokens equal the dynamic loop's; then ``generate``'s."""
    import torch

    from tidpo.training.anchors import sample_anchors
    from tidpo.training.decode import sample_from_prompt
    from tidpo.training.prompt_cache import prompt_forward

    with torch.no_grad():
        prompt = prompt_forward(model, ids, mask)
    rows_out, base = [], None
    for route in routes:
        tokens, seconds = timed(dev, lambda r=route: sample_from_prompt(model, prompt, config, decode=r), 3)
        base = tokens if base is None else base
        same = bool(tokens.shape == base.shape and torch.equal(tokens, base))
        rows_out.append({"route": route, "seconds": seconds, "tokens": list(tokens.shape), "equal_to_dynamic": same})
        report["routes"] = rows_out
    batch, seconds = timed(dev, lambda: sample_anchors(model, ids, mask, config), 2)
    report["generate"] = {"seconds": seconds, "equal_to_dynamic": bool(torch.equal(batch.tokens, base))}
    return [*rows_out, {"route": "generate (whole rows, prompt forward included)", **report.data["generate"]}]


def dpo_step(out) -> float | None:
    """tidpo's DPO step (s) from the same run's speed part, if it ran."""
    speed = out / "speed.json"
    if not speed.exists():
        return None
    results = {r["name"]: r for r in json.loads(speed.read_text())["results"]}
    return results.get("tidpo_dpo", {}).get("step_s")


def table(report, every, step, new) -> None:
    report.line("")
    report.line("| decode | s per draw | per token (ms) | vs tidpo's DPO step | tokens equal to dynamic |")
    report.line("| --- | --- | --- | --- | --- |")
    for r in every:
        ratio = f"{r['seconds'] / step:.2f}" if step else "n/a"
        report.line(
            f"| {r['route']} | {r['seconds']:.3f} | {1000 * r['seconds'] / new:.1f} | {ratio} | "
            f"{'yes' if r['equal_to_dynamic'] else '**no**'} |"
        )


if __name__ == "__main__":
    raise SystemExit(main())
