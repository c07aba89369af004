"""Part ``route_cost``: where tidpo's DPO step spends its time against TRL's, at speed.py's shape.

The second GPU check (H200, 2026-12-04, benchmarks/results/gpu-h200-2026-12-04b) found the shared prompt costing
most of tidpo's gap (0.406 s a step against 0.224 s with whole rows, TRL 0.157 s), so on a GPU the default is now
whole rows. This part times tidpo's DPO step with the shared prompt asked for, and with full logits (same numbers
by the equality tests; only the cost may differ), next to TRL's and tidpo's default routes
(read from the same run's speed.json, or measured here when there is none), and profiles one tidpo step: the
operators with the most device time and host time, and how often the host waited for the device.
"""

from __future__ import annotations

import importlib
import json
import statistics

from common import Report, device, parser  # importing it puts benchmarks/ on the path

speed = importlib.import_module("speed")  # benchmarks/speed.py: its configurations, trainer factory, step timer

BASES = ("trl_dpo_no_ckpt", "tidpo_dpo")  # speed.py's own configurations: TRL's best, tidpo's default routes
VARIANTS = {  # name -> (trainer, overrides): one route changed at a time from the GPU default (whole rows)
    "tidpo_dpo_shared_prompt": ("tidpo", {"baseline": "dpo", "share_prompt": True}),
    "tidpo_dpo_full_logits": ("tidpo", {"baseline": "dpo", "share_prompt": False, "chunked_logits": False}),
}
SYNC_OPS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "aten::item", "aten::_local_scalar_dense")


def _profile(args, dev, dtype, report: Report) -> None:
    """One profiled tidpo DPO step after a warm-up: top operators by device and by host time, host waits."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    from transformers import TrainerCallback

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])

    class Window(TrainerCallback):
        def __init__(self):
            self.prof = None

        def on_step_begin(self, a, state, control, **kw):
            if state.global_step == 1:
                self.prof = profile(activities=activities)
                self.prof.__enter__()

        def on_step_end(self, a, state, control, **kw):
            if self.prof is not None and state.global_step == 2:
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                self.prof.__exit__(None, None, None)

    trainer = speed._trainer("tidpo_dpo", args, dev, dtype, args.prompt_len, args.response_len, 2)
    window = Window()
    trainer.add_callback(window)
    trainer.train()
    events = window.prof.key_averages()
    report.line("")
    report.line("One profiled tidpo DPO step (torch.profiler), operators by self device time:")
    report.line("")
    report.line("| operator | calls | self device ms | self host ms |")
    report.line("| --- | --- | --- | --- |")
    by_device = sorted(events, key=lambda e: e.self_device_time_total, reverse=True)[:15]
    for e in by_device:
        report.line(
            f"| {e.key[:60]} | {e.count} | {e.self_device_time_total / 1e3:.1f} | {e.self_cpu_time_total / 1e3:.1f} |"
        )
    report.line("")
    report.line("By self host time:")
    report.line("")
    report.line("| operator | calls | self host ms | self device ms |")
    report.line("| --- | --- | --- | --- |")
    for e in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:15]:
        report.line(
            f"| {e.key[:60]} | {e.count} | {e.self_cpu_time_total / 1e3:.1f} | {e.self_device_time_total / 1e3:.1f} |"
        )
    waits = {e.key: (e.count, round(e.cpu_time_total / 1e3, 1)) for e in events if e.key in SYNC_OPS}
    report["host_waits"] = waits
    report.line("")
    report.line(f"Host waits (calls, host ms): {waits}")


def _bases(out) -> dict:
    """TRL's and tidpo's default step from this run's speed part, when it measured them."""
    path = out / "speed.json"
    if not path.exists():
        return {}
    measured = {r["name"]: r for r in json.loads(path.read_text()).get("results", [])}
    return {n: {"step_s": measured[n]["step_s"], "from": "speed.json"} for n in BASES if n in measured}


def main() -> int:
    args = parser(__doc__).parse_args()
    import torch

    dev = device(args.cpu)
    sp = speed.make_parser().parse_args(["--quick"] if args.cpu else [])
    speed._settle_sizes(sp, dev.type == "cuda")
    sp.scratch = args.out / "route_cost_scratch"
    dtype = torch.float32 if args.cpu else torch.bfloat16
    speed.CONFIGS.update(VARIANTS)
    report = Report(args.out, "route_cost", shape=sp.shape, pairs=sp.pairs, prompt_len=sp.prompt_len,
                    response_len=sp.response_len, steps=sp.steps, results={})  # fmt: skip
    report.line(f"{sp.shape} ({dtype}), {sp.pairs} pairs of {sp.prompt_len} + {sp.response_len} tokens, median of "
                f"{sp.steps} steps after {sp.warmup}:")  # fmt: skip
    report.line("")
    report.line("| configuration | s per step | peak MiB |")
    report.line("| --- | --- | --- |")
    results = _bases(args.out)
    for name, r in results.items():
        report.line(f"| {name} (the speed part's) | {r['step_s']:.3f} | |")
    for name in [n for n in BASES if n not in results] + list(VARIANTS):
        r = speed.run_config(name, sp, dev, dtype, sp.prompt_len, sp.response_len, sp.steps)
        results[name] = {"step_s": r.step_s, "steps": r.step_times, "peak_mib": r.peak_mem_mb}
        report["results"] = results
        report.line(f"| {name} | {r.step_s:.3f} | {r.peak_mem_mb:.0f} |")
    _profile(sp, dev, dtype, report)
    trl = results["trl_dpo_no_ckpt"]["step_s"]
    report.line("")
    report.line("Against TRL: " + ", ".join(f"{n} {v['step_s'] / trl:.2f}×" for n, v in results.items()))
    return 0 if statistics.fmean(v["step_s"] for v in results.values()) > 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
