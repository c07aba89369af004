"""Step time, tokens/s and peak memory of TRL 1.16's DPOTrainer and tidpo's modes, side by side in one process.

    python benchmarks/speed.py                 # this machine's default shape; writes JSON + docs/performance.md
    python benchmarks/speed.py --quick         # a tiny model, seconds: checks that every configuration runs
    python benchmarks/speed.py --help

Every configuration trains the same randomly initialised model shape (SmolLM2-135M's config on a CPU, fp32;
Qwen2.5-0.5B's on a GPU, bf16) on the same synthetic pairs (random token ids, every row prompt + response + EOS),
with AdamW, full fine-tuning and an explicit frozen reference copy. A step's time is the median over
``--steps`` optimizer steps after ``--warmup`` steps. Peak memory is CUDA's max allocated on a GPU, and on a CPU
the peak resident set size above the level measured just before the configuration built its models.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the page's writer and the step timer: other benchmark scripts import them from here
from speed_inputs import SHAPES, build_model, build_tokenizer, synthetic_pairs  # noqa: E402
from speed_page import results_section, sweep_section, write_markdown  # noqa: E402
from speed_probes import RSSPeak as _RSSPeak  # noqa: E402
from speed_probes import StepTimer as _StepTimer  # noqa: E402
from speed_probes import free_memory as _free_memory  # noqa: E402
from speed_probes import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# name -> (trainer, config overrides). TRL runs with its own defaults except where named.
CONFIGS = {
    "trl_dpo": ("trl", {}),
    "trl_dpo_no_ckpt": ("trl", {"gradient_checkpointing": False}),
    "tidpo_dpo": ("tidpo", {"baseline": "dpo"}),
    "tidpo_ti_dpo_g0_fused": ("tidpo", {"triplet_weight": 0.0, "attribution": "fused"}),
    "tidpo_ti_dpo_g0_separate": ("tidpo", {"triplet_weight": 0.0, "attribution": "separate"}),
    "tidpo_ti_dpo_full": ("tidpo", {"triplet_weight": 0.1, "anchor_max_new_tokens": 64}),
}
SWEEP = ("trl_dpo_no_ckpt", "tidpo_dpo", "tidpo_ti_dpo_full")
RATIOS = (  # (label, numerator, denominator or "trl_best", target, metric)
    ("tidpo DPO mode / TRL DPO", "tidpo_dpo", "trl_best", 0.85, "step_s"),
    ("TI-DPO γ=0 fused / TRL DPO", "tidpo_ti_dpo_g0_fused", "trl_best", 0.9, "step_s"),
    ("full TI-DPO / TRL DPO", "tidpo_ti_dpo_full", "trl_best", 1.6, "step_s"),
    ("TI-DPO fused / TI-DPO separate", "tidpo_ti_dpo_g0_fused", "tidpo_ti_dpo_g0_separate", 0.85, "step_s"),
    ("peak memory, full TI-DPO / TRL DPO", "tidpo_ti_dpo_full", "trl_best", 1.0, "peak_mem_mb"),
)


@dataclass
class Result:
    name: str
    prompt_len: int
    response_len: int
    step_s: float
    step_times: list[float]
    tokens_per_s: float
    peak_mem_mb: float
    extra: dict = field(default_factory=dict)


def _training_args(name: str, args, device: torch.device, dtype: torch.dtype, max_length: int, steps: int) -> dict:
    """The settings every configuration shares, TRL's and tidpo's alike (``CONFIGS`` adds its own on top)."""
    return dict(
        output_dir=str(args.scratch / name),
        per_device_train_batch_size=args.pairs,
        max_steps=steps,
        learning_rate=1e-6,
        logging_steps=10_000,
        save_strategy="no",
        report_to="none",
        seed=0,
        max_length=max_length,
        dataloader_num_workers=0,
        disable_tqdm=True,
        use_cpu=device.type == "cpu",
        bf16=dtype == torch.bfloat16,
    )


def _trainer(name: str, args, device: torch.device, dtype: torch.dtype, prompt_len: int, response_len: int, steps: int):
    """The configuration's trainer over fresh models (policy and reference, same seed) and ``steps`` batches."""
    kind, overrides = CONFIGS[name]
    tokenizer = build_tokenizer(SHAPES[args.shape]["vocab_size"])
    model = build_model(args.shape, dtype, seed=0)
    ref = build_model(args.shape, dtype, seed=0)
    data = synthetic_pairs(args.pairs * steps, prompt_len, response_len, SHAPES[args.shape]["vocab_size"], seed=1)
    common = _training_args(name, args, device, dtype, prompt_len + response_len + 1, steps)
    if kind == "trl":
        from trl import DPOConfig, DPOTrainer

        config_cls, trainer_cls = DPOConfig, DPOTrainer
    else:
        from tidpo import TIDPOConfig, TIDPOTrainer

        config_cls, trainer_cls = TIDPOConfig, TIDPOTrainer
    return trainer_cls(
        model=model,
        ref_model=ref,
        args=config_cls(**common, **overrides),
        train_dataset=data,
        processing_class=tokenizer,
    )


def _peak_mib(device: torch.device, rss: _RSSPeak, baseline: int) -> float:
    """CUDA's max allocated on a GPU; on a CPU the resident set's peak above ``baseline``."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return (rss.peak - baseline) / 2**20


def run_config(
    name: str, args, device: torch.device, dtype: torch.dtype, prompt_len: int, response_len: int, timed_steps: int
):
    kind, _ = CONFIGS[name]
    _free_memory()
    baseline = _RSSPeak.current()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer = _trainer(name, args, device, dtype, prompt_len, response_len, args.warmup + timed_steps)
    timer = _StepTimer(device)
    trainer.add_callback(timer)
    with _RSSPeak() as rss:
        trainer.train()
    timed = timer.times[args.warmup :]
    step = statistics.median(timed)
    tokens = args.pairs * 2 * (prompt_len + response_len + 1)
    peak = _peak_mib(device, rss, baseline)
    extra = {}
    if kind == "tidpo":
        extra = {k: v for k, v in trainer.state.log_history[-1].items() if k.startswith("time/")}
    del trainer
    _free_memory()
    return Result(name, prompt_len, response_len, step, timed, tokens / step, peak, extra)


def ratios(results: dict[str, Result]) -> list[dict]:
    trl = [results[n] for n in ("trl_dpo", "trl_dpo_no_ckpt") if n in results]
    best = min(trl, key=lambda r: r.step_s) if trl else None
    rows = []
    for label, num, den, target, metric in RATIOS:
        a, b = results.get(num), best if den == "trl_best" else results.get(den)
        if a is None or b is None:
            continue
        value = getattr(a, metric) / getattr(b, metric)
        rows.append({"ratio": label, "value": value, "target": target, "met": value <= target, "denominator": b.name})
    return rows


def markdown_sections(report: dict) -> dict[str, str]:
    """Markdown per page section: ``<device>`` (configurations and ratios) and ``<device>-sweep``, when run."""
    device, sections = report["device"], {}
    label = report.get("label") or ""
    title = device.upper() + (f" ({label})" if label else "")
    device = device + (f"-{label}" if label else "")
    if report["results"]:
        sections[device] = results_section(report, title)
    if report["sweep"]:
        sections[f"{device}-sweep"] = sweep_section(report, title, SWEEP)
    return sections


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--shape", choices=tuple(SHAPES), help="default: smollm2-135m on CPU, qwen2.5-0.5b on GPU")
    p.add_argument("--pairs", type=int, help="pairs per step (default: 2 on CPU, 4 on GPU)")
    p.add_argument("--prompt_len", type=int, help="default: 64 on CPU, 256 on GPU")
    p.add_argument("--response_len", type=int, help="default: 192 on CPU, 768 on GPU")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=3, help="timed steps per configuration (median reported)")
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of: " + ", ".join(CONFIGS))
    p.add_argument("--sweep", default=None, help="sequence lengths for the sweep, e.g. 256,512,1024,2048 ('' = none)")
    p.add_argument("--sweep_steps", type=int, default=None, help="timed steps per sweep point (default: --steps)")
    p.add_argument("--quick", action="store_true", help="tiny model, 1 step each, no sweep, nothing written to docs/")
    p.add_argument("--json", type=Path, help="where the JSON goes (default: benchmarks/results/speed-<device>.json)")
    p.add_argument("--markdown", type=Path, help="page to update (default: docs/performance.md; none with --quick)")
    p.add_argument("--scratch", type=Path, default=Path("/tmp/tidpo-speed"))
    p.add_argument(
        "--label", default="", help="names a separate page section and JSON file (e.g. an allocator setting)"
    )
    return p


def _settle_sizes(args, gpu: bool) -> None:
    """Fill in the sizes left unset: ``--quick``'s tiny ones first, then this device's defaults."""
    if args.quick:
        args.shape, args.warmup, args.steps = args.shape or "tiny", 1, 1
        args.pairs, args.prompt_len, args.response_len = args.pairs or 2, args.prompt_len or 8, args.response_len or 24
        args.sweep = args.sweep or ""
    args.shape = args.shape or ("qwen2.5-0.5b" if gpu else "smollm2-135m")
    args.pairs = args.pairs or (4 if gpu else 2)
    args.prompt_len = args.prompt_len or (256 if gpu else 64)
    args.response_len = args.response_len or (768 if gpu else 192)
    if args.sweep is None:
        args.sweep = "256,512,1024,2048" if gpu else "256,512,1024"
    args.sweep_steps = args.sweep_steps or args.steps


def _config_names(args) -> list[str]:
    """The configurations asked for by ``--configs``, each a key of ``CONFIGS``."""
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown configuration(s) {unknown}; choose from {list(CONFIGS)}")
    return names


def _measure(names: list[str], args, device: torch.device, dtype: torch.dtype, save) -> tuple[dict, list]:
    """Every configuration at the main shape, then the sweep's at each of its lengths; ``save(results, sweep)``
    after each, so that a run cut short keeps what it measured."""
    results, sweep = {}, []
    for name in names:
        print(f"[speed] {name} ...", flush=True)
        results[name] = run_config(name, args, device, dtype, args.prompt_len, args.response_len, args.steps)
        print(f"[speed] {name}: {results[name].step_s:.3f} s/step, {results[name].peak_mem_mb:.0f} MiB", flush=True)
        save(results, sweep)
    for length in [int(x) for x in args.sweep.split(",") if x.strip()]:
        for name in SWEEP:
            print(f"[speed] sweep {name} @ {length} ...", flush=True)
            prompt_len, response_len = length // 4, length - length // 4 - 1  # + EOS = length tokens a row
            sweep.append(run_config(name, args, device, dtype, prompt_len, response_len, args.sweep_steps))
            save(results, sweep)
    return results, sweep


def _report(argv, args, device: torch.device, dtype: torch.dtype, results: dict, sweep: list) -> dict:
    """What the JSON file holds: the command, the machine, the settings and every measurement."""
    return {
        "command": "python benchmarks/speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": dt.date.today().isoformat(),
        "device": device.type,
        "label": args.label,
        "machine": machine(),
        "settings": {
            "shape": args.shape,
            "dtype": str(dtype).removeprefix("torch."),
            "pairs": args.pairs,
            "prompt_len": args.prompt_len,
            "response_len": args.response_len,
            "warmup": args.warmup,
            "steps": args.steps,
            "sweep_steps": args.sweep_steps,
        },
        "results": [asdict(r) for r in results.values()],
        "ratios": ratios(results),
        "sweep": [asdict(r) for r in sweep],
    }


def _json_path(args, device: torch.device) -> Path:
    """``--json``, or ``benchmarks/results/speed-<quick or device>[-<label>].json``."""
    return args.json or (
        ROOT
        / "benchmarks"
        / "results"
        / f"speed-{'quick' if args.quick else device.type}{'-' + args.label if args.label else ''}.json"
    )


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.label and not all(c.isalnum() or c == "-" for c in args.label):
        raise SystemExit(f"--label may hold letters, digits and '-' only, got {args.label!r}")
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    gpu = device.type == "cuda"
    _settle_sizes(args, gpu)
    dtype = torch.bfloat16 if gpu else torch.float32
    names = _config_names(args)
    # imported before any measurement, so that no configuration's memory includes the imports
    from trl import DPOConfig, DPOTrainer  # noqa: F401

    from tidpo import TIDPOConfig, TIDPOTrainer  # noqa: F401

    json_path = _json_path(args, device)
    json_path.parent.mkdir(parents=True, exist_ok=True)

    def save(results: dict, sweep: list) -> dict:
        report = _report(argv, args, device, dtype, results, sweep)
        json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        return report

    report = save(*_measure(names, args, device, dtype, save))
    sections = markdown_sections(report)
    print("\n".join(sections.values()))
    md = args.markdown or (None if args.quick else ROOT / "docs" / "performance.md")
    for key, text in sections.items() if md is not None else ():
        write_markdown(md, key, text)
    print(f"[speed] JSON: {json_path}" + (f"; markdown: {md}" if md else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
