"""Build the quality tables of docs/results.md and the reward-against-KL plot from benchmarks/quality/results/.

    python benchmarks/quality/report.py                 # rewrites the generated blocks of docs/results.md
    python benchmarks/quality/report.py --print         # only prints them

Each table lives between ``<!-- quality:NAME -->`` and ``<!-- /quality:NAME -->`` in the page; everything else on
the page is kept. Every number is a mean ± standard deviation over the runs (seeds) found; the seed count is in
the table, so a partial set of runs is visible as such.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PAGE = ROOT / "docs" / "results.md"
PLOT = ROOT / "docs" / "images" / "quality_reward_kl.png"

import sys  # noqa: E402

sys.path.insert(0, str(HERE))
from run import LABELS, METHODS, NOISE_LEVELS, NOISE_METHODS  # noqa: E402

PAPER_NOISE = {"dpo": (69.3, 64.8, 60.1), "ti-dpo-paper": (73.0, 70.8, 68.3)}  # paper Table B8, 0/20/40 %
# What the paper reports for each row (its six-benchmark average, its diversity numbers, its ablation order); a
# different quantity from ours, so only the direction compares.
PAPER_SENTIMENT = {
    "dpo": "avg 57.7; Distinct-2 0.87, Self-BLEU 34.2 %",
    "tdpo2": "avg 57.0 (TDPO)",
    "ti-dpo-paper": "avg 62.3; Distinct-2 0.93, Self-BLEU 30.1 %; ablation rank 1 (full)",
    "gradient-only": "ablation rank 2 (no Gaussian prior)",
    "gamma-0": "ablation rank 2 (no triplet)",
    "uniform": "ablation rank 4 (uniform)",
    "random": "ablation rank 5 (random)",
}
PAPER_HH = {"dpo": "avg 57.7", "tdpo2": "avg 57.0 (TDPO)", "ti-dpo-paper": "avg 62.3"}


def load(results: Path) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {}
    for path in sorted(results.glob("*/*.json")):
        runs.setdefault(path.parent.name, []).append(json.loads(path.read_text()))
    return runs


def ms(values: list[float], fmt: str = "{:+.3f}") -> str:
    """``mean ± sd`` (sd over the runs; a single run has none)."""
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return fmt.format(mean)
    return f"{fmt.format(mean)} ± {fmt.format(statistics.stdev(values)).lstrip('+')}"


def by_method(runs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for run in runs:
        out.setdefault(run["method"], []).append(run)
    return out


def sentiment_table(runs: list[dict]) -> str:
    groups = by_method(runs)
    lines = [
        "| method | seeds | reward gain over the reference | runs whose 95 % CI excludes 0 | win rate | KL (nats) "
        "| held-out pref. accuracy | Distinct-2 | Distinct-4 | Self-BLEU-4 | entropy (nats) | paper |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    reference = None
    for method in METHODS:
        rows = groups.get(method, [])
        if not rows:
            continue
        gen = [r["generation"] for r in rows]
        reference = gen[0]["reference"]
        above = sum(g["reward_difference"]["low"] > 0 for g in gen)
        lines.append(
            f"| {LABELS[method]} | {len(rows)} | {ms([g['reward_difference']['mean'] for g in gen])} | "
            f"{above}/{len(rows)} | {ms([g['win_rate'] for g in gen], '{:.3f}')} | "
            f"{ms([g['kl']['mean'] for g in gen], '{:.2f}')} | "
            f"{ms([r['heldout']['rewards/accuracies'] for r in rows], '{:.3f}')} | "
            f"{ms([g['policy']['distinct_2'] for g in gen], '{:.3f}')} | "
            f"{ms([g['policy']['distinct_4'] for g in gen], '{:.3f}')} | "
            f"{ms([g['policy']['self_bleu_4'] for g in gen], '{:.3f}')} | "
            f"{ms([g['policy']['entropy'] for g in gen], '{:.2f}')} | {PAPER_SENTIMENT.get(method, '—')} |"
        )
    if reference is not None:
        r = reference
        lines.append(
            f"| reference (untrained), mean reward {r['reward']['mean']:+.3f} [{r['reward']['low']:+.3f}, "
            f"{r['reward']['high']:+.3f}] | — | — | — | — | — | — | {r['distinct_2']:.3f} | {r['distinct_4']:.3f} | "
            f"{r['self_bleu_4']:.3f} | {r['entropy']:.2f} | — |"
        )
    return "\n".join(lines) + "\n"


def noise_table(noise: list[dict], clean: list[dict]) -> str:
    lines = [
        "| method | " + " | ".join(f"{round(f * 100)} % flipped: reward gain / pref. accuracy" for f in (0.0,
                                                                                                      *NOISE_LEVELS))
        + " | paper (0 / 20 / 40 %) |",
        "| --- | " + " | ".join("---" for _ in range(len(NOISE_LEVELS) + 1)) + " | --- |",
    ]  # fmt: skip
    for method in NOISE_METHODS:
        cells = []
        for flip in (0.0, *NOISE_LEVELS):
            rows = [r for r in (clean if flip == 0 else noise) if r["method"] == method and r.get("flip", 0) == flip]
            if not rows:
                cells.append("—")
                continue
            gain = ms([r["generation"]["reward_difference"]["mean"] for r in rows])
            acc = ms([r["heldout"]["rewards/accuracies"] for r in rows], "{:.3f}")
            cells.append(f"{gain} / {acc} ({len(rows)} seeds)")
        paper = " / ".join(f"{v:.1f}" for v in PAPER_NOISE[method])
        lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + f" | {paper} |")
    return "\n".join(lines) + "\n"


def hh_table(runs: list[dict]) -> str:
    lines = [
        "| method | seeds | dev preference accuracy | dev margin | dev chosen reward | dev rejected reward "
        "| train pairs seen | minutes a run | paper (six-benchmark avg. %) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for method, rows in by_method(runs).items():
        h = [r["heldout"] for r in rows]
        seen = rows[0]["settings"]["max_steps"] * rows[0]["settings"]["per_device_train_batch_size"]
        lines.append(
            f"| {LABELS[method]} | {len(rows)} | {ms([x['rewards/accuracies'] for x in h], '{:.3f}')} | "
            f"{ms([x['rewards/margins'] for x in h])} | {ms([x['rewards/chosen'] for x in h])} | "
            f"{ms([x['rewards/rejected'] for x in h])} | {seen} | {ms([r['seconds'] / 60 for r in rows], '{:.1f}')} | "
            f"{PAPER_HH.get(method, '—')} |"
        )
    return "\n".join(lines) + "\n"


def weights_table(run: dict) -> str:
    lines = [
        "| preset / attribution target | weighting | ROC AUC (per response) | AUC (pooled) | EOS share "
        "| share on lexicon tokens |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    base_rate = None
    for setting, rec in run["recovery"].items():
        base_rate = rec["base_rate"]
        for name in [k for k, v in rec.items() if isinstance(v, dict)]:
            r = rec[name]
            auc = "—" if r["auc"] is None else f"{r['auc']:.3f}"
            pooled = "—" if r["auc_pooled"] is None else f"{r['auc_pooled']:.3f}"
            lines.append(f"| {setting} | {name} | {auc} | {pooled} | {r['eos_share']:.3f} | "
                         f"{r['relevant_share']:.3f} |")  # fmt: skip
    first = next(iter(run["recovery"].values()))
    note = (
        f"\n{run['pairs']} held-out pairs, {first['responses_scored']} of {first['responses']} responses with both "
        f"kinds of token; {first['tokens']} tokens, of which {base_rate:.1%} belong to lexicon words (the share an "
        "even weighting puts on them). The paper reports no per-token recovery figure to set beside these.\n"
    )
    return "\n".join(lines) + "\n" + note


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    markers = "osD^v<>pPX*h"
    for i, (method, rows) in enumerate(by_method(runs).items()):
        xs = [r["generation"]["kl"]["mean"] for r in rows]
        ys = [r["generation"]["reward_difference"]["mean"] for r in rows]
        ax.scatter(xs, ys, marker=markers[i % len(markers)], s=45, label=LABELS[method])
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("KL(policy ‖ reference) per continuation (nats, from the samples)")
    ax.set_ylabel("held-out reward gain over the reference (VADER)")
    ax.set_title("Sentiment task, SmolLM2-135M-Instruct + LoRA: one point per run (seed)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_block(page: Path, name: str, text: str) -> None:
    start, end = f"<!-- quality:{name} -->", f"<!-- /quality:{name} -->"
    content = page.read_text() if page.exists() else "# Results\n"
    block = f"{start}\n{text}{end}"
    if start in content and end in content:
        content = content[: content.index(start)] + block + content[content.index(end) + len(end) :]
    else:
        content = content.rstrip("\n") + "\n\n" + block + "\n"
    page.write_text(content)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=HERE / "results")
    p.add_argument("--page", type=Path, default=PAGE)
    p.add_argument("--plot", type=Path, default=PLOT)
    p.add_argument("--print", action="store_true", help="print the tables; write nothing")
    args = p.parse_args(argv)
    runs = load(args.results)
    blocks = {}
    if runs.get("sentiment"):
        blocks["sentiment"] = sentiment_table(runs["sentiment"])
        blocks["noise"] = noise_table(runs.get("noise", []), runs["sentiment"])
    if runs.get("hh"):
        blocks["hh"] = hh_table(runs["hh"])
    if runs.get("weights"):
        blocks["weights"] = weights_table(runs["weights"][0])
    for name, text in blocks.items():
        print(f"## {name}\n{text}")
        if not args.print:
            write_block(args.page, name, text)
    if runs.get("sentiment") and not args.print:
        plot(runs["sentiment"], args.plot)
        print(f"plot: {args.plot}")
    return 0 if blocks else 1


if __name__ == "__main__":
    raise SystemExit(main())
