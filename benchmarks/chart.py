"""A PNG of ours vs Ganesha vs the local limit: one panel per figure, since the units
differ (MiB/s, IOPS, ops/s, seconds). Each bar is labelled with its median, and each
panel's title carries the ratio, so the picture reads without the table."""
from __future__ import annotations

from pathlib import Path

COLORS = {"ours": "#2b6cb0", "ganesha": "#dd6b20", "local": "#718096"}
LABELS = {"ours": "ours", "ganesha": "Ganesha", "local": "local psync"}
METRIC_LABELS = {"bw_mib_s": "bandwidth", "iops": "IOPS", "meta_ops_s": "create+stat+remove",
                 "ls_s": "ls -l time"}


def render_chart(summary: list[dict], path: Path, title: str) -> Path:
    """Draw the summary rows into path (PNG) with matplotlib's Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in summary if row.get("median")]
    if not rows:
        raise ValueError("no measured figure to chart")
    columns = 3
    nrows = (len(rows) + columns - 1) // columns
    fig, axes = plt.subplots(nrows, columns, figsize=(4.2 * columns, 3.2 * nrows), squeeze=False)
    for ax, row in zip(axes.flat, rows):
        servers = [s for s in ("ours", "ganesha", "local") if s in row["median"]]
        values = [row["median"][s] for s in servers]
        bars = ax.bar([LABELS[s] for s in servers], values, color=[COLORS[s] for s in servers])
        for bar, value in zip(bars, values):
            text = f"{value:.3f}" if row["unit"] == "s" else f"{value:,.0f}"
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
        ratio = row.get("ratio_ours_vs_ganesha")
        ratio_text = f" - {ratio:.2f}x" if ratio is not None else ""
        what = METRIC_LABELS.get(row["metric"], row["metric"])
        ax.set_title(f"{row['job']}: {what}{ratio_text}", fontsize=9)
        unit = row["unit"] + ("" if row["higher_is_better"] else " (lower is better)")
        ax.set_ylabel(unit, fontsize=8)
        ax.tick_params(labelsize=8)
        ax.margins(y=0.15)
    for ax in list(axes.flat)[len(rows):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
