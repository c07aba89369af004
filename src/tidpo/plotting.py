"""Training curves from ``metrics.jsonl`` (one JSON log row per line, as ``MetricsJsonlCallback`` writes it).

Each panel plots one or more metrics against the optimizer step: the training value as a solid line, the
evaluation value (``eval_`` prefix) as a dashed line with markers in the same colour. A panel whose metrics are all
absent is left out. Token weights are plotted for training only: evaluation uses uniform weights unless
``eval_importance`` is set, so its weight curves would be flat at 1.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

# (panel title, metrics on it, whether to add the eval_ curves)
PANELS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("loss", ("loss",), True),
    ("reward accuracy", ("rewards/accuracies",), True),
    ("reward margin (chosen - rejected)", ("rewards/margins",), True),
    ("rewards", ("rewards/chosen", "rewards/rejected"), True),
    ("sequential KL to the reference", ("kl/chosen", "kl/rejected"), True),
    ("token weights (training)", ("weights/max", "weights/effective_fraction"), False),
)


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a ``metrics.jsonl`` file (blank lines skipped)."""
    with Path(path).open(encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def _series(rows: list[dict], key: str) -> tuple[list[float], list[float]]:
    points = [(row["step"], row[key]) for row in rows if isinstance(row.get(key), (int, float))]
    points = [(s, v) for s, v in points if math.isfinite(v)]
    return [s for s, _ in points], [v for _, v in points]


def _panels(rows: list[dict]) -> list[tuple[str, list]]:
    """The panels of :data:`PANELS` that have data, each with its curves (label, colour, is_eval, steps, values)."""
    panels = []
    for name, keys, with_eval in PANELS:
        curves = [(k, i, False, *_series(rows, k)) for i, k in enumerate(keys)]
        if with_eval:
            curves += [(f"eval_{k}", i, True, *_series(rows, f"eval_{k}")) for i, k in enumerate(keys)]
        curves = [c for c in curves if c[3]]
        if curves:
            panels.append((name, curves))
    return panels


def has_curves(metrics_path: str | Path) -> bool:
    """Whether ``metrics_path`` holds any metric :func:`plot_training_curves` draws."""
    return bool(_panels(read_metrics(metrics_path)))


def plot_training_curves(metrics_path: str | Path, output_path: str | Path, title: str | None = None) -> Path:
    """Draw the panels of :data:`PANELS` that have data into a PNG.

    Args:
        metrics_path: a ``metrics.jsonl`` file.
        output_path: the PNG to write.
        title: figure title (default: the metrics file's folder name).

    Returns:
        ``output_path``.

    Raises:
        ValueError: the file holds none of the plotted metrics (for example, a run that never logged).
    """
    plt = _pyplot()
    panels = _panels(read_metrics(metrics_path))
    if not panels:
        raise ValueError(f"{metrics_path} has no training metrics to plot (set --logging_steps to log more often)")
    columns = min(3, len(panels))
    rows_n = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows_n, columns, figsize=(4.6 * columns, 3.4 * rows_n), squeeze=False)
    for ax, (name, curves) in zip(axes.flat, panels, strict=False):
        _draw_panel(ax, name, curves)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(title or Path(metrics_path).resolve().parent.name)
    fig.tight_layout()
    from tidpo.files import replacing

    output_path = Path(output_path)
    with replacing(output_path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return output_path


def _pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _draw_panel(ax, name: str, curves: list) -> None:
    """One panel: each curve solid (training) or dashed with markers (evaluation), a lone point marked."""
    from matplotlib.ticker import MaxNLocator

    for key, colour, is_eval, steps, values in curves:
        style = {"linestyle": "--", "marker": "o", "markersize": 4} if is_eval else {"linewidth": 1.6}
        if len(steps) == 1:
            style["marker"] = "o"
        ax.plot(steps, values, label=key, color=f"C{colour}", **style)
    ax.set_title(name, fontsize=10)
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
