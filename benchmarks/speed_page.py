"""The speed report as docs/performance.md shows it: one markdown section per table, each between its own markers,
so that a rerun replaces its sections and keeps the rest of the page (``benchmarks/speed.py`` measures; this
writes)."""

from __future__ import annotations

from pathlib import Path


def provenance(report: dict) -> str:
    """The command, the machine and the versions a table was measured with, as one sentence."""
    m = report["machine"]
    hw = m.get("gpu") or f"{m['cpu']} ({m['cpu_count']} cores)"
    env = " ".join(f"{k}={v}" for k, v in m.get("env", {}).items())
    return (
        f"`{(env + ' ') if env else ''}{report['command']}` on {hw}, torch {m['torch']}, transformers "
        f"{m['transformers']}, trl {m['trl']}, {report['date']}."
    )


def _seconds_cell(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def results_section(report: dict, title: str) -> str:
    """The configurations' table and the ratios' table."""
    s = report["settings"]
    lines = [
        f"### {title}: {s['shape']} ({s['dtype']}), {s['pairs']} pairs, prompt {s['prompt_len']} "
        f"+ response {s['response_len']}",
        "",
        f"{provenance(report)} Median of {s['steps']} steps after {s['warmup']} warm-up.",
        "",
        "| configuration | step (s) | tokens/s | peak memory (MiB) | attribution (s) | anchor sampling (s) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["results"]:
        att, anc = r["extra"].get("time/attribution"), r["extra"].get("time/anchor_sampling")
        lines.append(
            f"| {r['name']} | {r['step_s']:.3f} | {r['tokens_per_s']:.0f} | {r['peak_mem_mb']:.0f} | "
            f"{_seconds_cell(att)} | {_seconds_cell(anc)} |"
        )
    lines += ["", "| ratio | measured | target | met |", "| --- | --- | --- | --- |"]
    for r in report["ratios"]:
        lines.append(
            f"| {r['ratio']} (vs {r['denominator']}) | {r['value']:.2f} | ≤ {r['target']} | "
            f"{'yes' if r['met'] else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def sweep_section(report: dict, title: str, names: tuple[str, ...]) -> str:
    """Step time of each of ``names`` (a row each) against the sequence length (a column each)."""
    s = report["settings"]
    lens = sorted({r["prompt_len"] + r["response_len"] + 1 for r in report["sweep"]})
    lines = [
        f"### {title}: step time (s) against sequence length, {s['shape']} ({s['dtype']}), "
        f"{s['pairs']} pairs, prompt = length / 4",
        "",
        f"{provenance(report)} Median of {s['sweep_steps']} step(s) after {s['warmup']} warm-up.",
        "",
        "| configuration | " + " | ".join(str(n) for n in lens) + " |",
        "| --- |" + " --- |" * len(lens),
    ]
    for name in names:
        cells = {r["prompt_len"] + r["response_len"] + 1: r["step_s"] for r in report["sweep"] if r["name"] == name}
        lines.append(f"| {name} | " + " | ".join(f"{cells[n]:.2f}" if n in cells else "" for n in lens) + " |")
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, section: str, text: str) -> None:
    """Replace one section of ``path`` (between its markers), keeping the rest of the page."""
    start, end = f"<!-- speed:{section} -->", f"<!-- /speed:{section} -->"
    page = path.read_text() if path.exists() else "# Performance\n\n"
    block = f"{start}\n{text}{end}\n"
    if start in page and end in page:
        page = page[: page.index(start)] + block + page[page.index(end) + len(end) + 1 :]
    else:
        page = page.rstrip("\n") + "\n\n" + block
    path.write_text(page)
