"""The report of ``tidpo compare`` as Markdown (the reward-at-budget table, the checkpoints) and as a
reward-against-KL plot (matplotlib, Agg: no display needed)."""

from __future__ import annotations

from pathlib import Path


def interval(stat: dict | None, replicates: int) -> str:
    """``+0.123 [+0.050, +0.200]``, or why there is no number or no interval."""
    if stat is None:
        return "(baseline)"
    if stat["mean"] is None:
        return "not reached"
    if stat["low"] is None:
        share = 100 * stat["missed_replicates"] / replicates
        return f"{stat['mean']:+.3f} (no interval: {share:.0f} % of replicates miss)"
    return f"{stat['mean']:+.3f} [{stat['low']:+.3f}, {stat['high']:+.3f}]"


def _table_lines(report: dict) -> list[str]:
    rows = report["table"]
    if not rows:
        return ["No method has a fully evaluated run yet: no table (see the missing work below)."]
    reps, base = report["bootstrap"]["replicates"], report["baseline"]
    seeds = len(report["seeds_in_table"])
    lines = []
    for budget in report["budgets"]:
        lines += [f"### KL budget {budget:g} nats", ""]
        lines.append(f"| method | reward gain at KL {budget:g} [95 % CI] | − {base or 'baseline'} [95 % CI] | seeds |")
        lines.append("|---|---|---|---|")
        for row in (r for r in rows if r["budget"] == budget):
            diff = interval(row["difference"], reps) if base else "—"
            gain = interval(row["reward_gain"], reps)
            lines.append(f"| {row['label']} | {gain} | {diff} | {row['seeds_reaching']}/{seeds} reach it |")
        lines.append("")
    return lines


def _point_lines(report: dict) -> list[str]:
    lines = ["| method | seed | step | KL (nats) | reward gain [95 % CI] | win rate | Distinct-2 | Self-BLEU-4 |"]
    lines.append("|---|---|---|---|---|---|---|---|")
    for method in report["methods"]:
        for run in method["runs"]:
            for p in run["points"][1:]:
                bleu = "n/a" if p["self_bleu_4"] is None else f"{p['self_bleu_4']:.3f}"
                gain = f"{p['gain']:+.3f} [{p['gain_low']:+.3f}, {p['gain_high']:+.3f}]"
                cells = [method["label"], run["seed"], p["step"], f"{p['kl']:.3f}", gain, f"{p['win_rate']:.3f}"]
                cells += [f"{p['distinct_2']:.3f}", bleu]
                lines.append("| " + " | ".join(map(str, cells)) + " |")
    return lines


def markdown(report: dict) -> str:
    """The report as a Markdown page."""
    seeds = ", ".join(map(str, report["seeds_in_table"])) or "none"
    lines = [
        "# Reward against KL",
        "",
        f"{report['model']}, reward {report['reward']}, {report['prompts']} prompts × "
        f"{report['samples_per_prompt']} samples; checkpoints {report['checkpoints']}; table seeds: {seeds}; "
        f"{report['bootstrap']['replicates']} paired bootstrap replicates (seed {report['bootstrap']['seed']}).",
        "Reward gain: the paired gain of the policy's mean reward over the reference's, interpolated along each "
        "run's checkpoints at the KL budget and averaged over seeds (docs/compare.md).",
        "",
        "![reward against KL](frontier.png)",
        "",
        *_table_lines(report),
        "## Every checkpoint",
        "",
        *_point_lines(report),
        "",
    ]
    if report["missing"]:
        lines += ["## Missing", "", *[f"- {line}" for line in report["missing"]], ""]
    lines.append(f"Made {report['date']} with tidpo {report['code']}.")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    """Every checkpoint of every run (one colour per method, each run's path as a thin line), each method's upper
    envelope as a step line, and the budgets as dotted verticals: the whole range on the left, and on the right the
    budgets' region (KL up to twice the largest budget), which a method that spends far more KL would squeeze."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (whole, near) = plt.subplots(1, 2, figsize=(14, 5.5))
    for ax in (whole, near):
        _draw(ax, report, plt)
    whole.set_title("every checkpoint; lines: each method's upper envelope")
    whole.legend(fontsize=8, loc="best")
    (low_kl, limit), gains = budget_region(report)
    near.set_xlim(low_kl, limit)
    if gains is not None:
        near.set_ylim(*gains)
    near.set_title(f"the budgets' region: KL up to {limit:g} nats")
    fig.suptitle("Reward against KL")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def budget_region(report: dict) -> tuple[tuple[float, float], tuple[float, float] | None]:
    """The right panel's limits: KL from 0 to twice the largest budget, and the gains of the checkpoints inside
    that range (0 included) padded by 5 % of their span; None when no checkpoint lies inside."""
    limit = 2 * max(report["budgets"])
    gains = [p["gain"] for m in report["methods"] for r in m["runs"] for p in r["points"] if p["kl"] <= limit]
    if not gains:
        return (0.0, limit), None
    low, high = min(0.0, *gains), max(0.0, *gains)
    pad = 0.05 * ((high - low) or 1.0)
    return (0.0, limit), (low - pad, high + pad)


def _draw(ax, report: dict, plt) -> None:
    colours = plt.get_cmap("tab10" if len(report["methods"]) <= 10 else "tab20")
    for i, method in enumerate(report["methods"]):
        colour = colours(i % colours.N)
        for run in method["runs"]:
            kl, gain = [p["kl"] for p in run["points"]], [p["gain"] for p in run["points"]]
            ax.plot(kl, gain, color=colour, alpha=0.35, linewidth=0.8, marker="o", markersize=3)
        if method["envelope"]:
            kl, gain = zip(*method["envelope"], strict=True)
            ax.step(kl, gain, where="post", color=colour, linewidth=2, label=method["label"])
    for budget in report["budgets"]:
        ax.axvline(budget, color="grey", linestyle=":", linewidth=1)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xlabel("KL(policy ‖ reference) per completion (nats)")
    ax.set_ylabel("reward gain over the reference")
