"""The report's figures, drawn with matplotlib (Agg, no display): SVG for the page, PNG where the Hub
model card shows one. matplotlib because it is well kept, already the bench's plotting library, and
writes static files offline: the page needs no plotting script (plotly, Vega) and no network.

Labels are drawn as text, never parsed: `text.parse_math` off, so a type such as `$X` is drawn as is.
SVG text is drawn as paths, so the figures need no font from the machine that opens the page.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, whatever DISPLAY or MPLBACKEND say
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {"text.parse_math": False, "svg.fonttype": "path", "svg.hashsalt": "tokclf", "font.size": 9,
         "axes.spines.top": False, "axes.spines.right": False}
CATEGORY_COLOURS = {"exact": "#4c9f70", "boundary": "#f2b134", "type": "#e0712c", "boundary+type": "#c0392b",
                    "missed": "#7f8c8d", "spurious": "#8e44ad"}
MAX_CONFUSION_LABELS = 40  # a heat map of more rows is unreadable: the most frequent gold labels are kept


@contextmanager
def figure(path: Path, width: float, height: float, formats=("svg",)):
    """A figure saved as path.<format> for each format (no date in the files: same input, same bytes)."""
    with matplotlib.rc_context(STYLE):
        fig = plt.figure(figsize=(width, height))
        try:
            yield fig
            fig.tight_layout()
            for fmt in formats:
                fig.savefig(path.with_suffix("." + fmt), format=fmt, dpi=100, metadata={"Date": None}
                            if fmt == "svg" else {"Software": None})
        finally:
            plt.close(fig)


def per_type_bars(rows: list[dict], path: Path) -> None:
    """Precision, recall and F1 per type, the support written under each group."""
    kinds = [row["type"] for row in rows]
    with figure(path, max(4.0, 0.9 * len(kinds) + 2), 3.2) as fig:
        ax = fig.add_subplot()
        for offset, (metric, colour) in enumerate((("precision", "#5b8def"), ("recall", "#f2b134"),
                                                   ("f1", "#4c9f70"))):
            ax.bar([i + (offset - 1) * 0.27 for i in range(len(kinds))], [row[metric] for row in rows], 0.27,
                   label=metric, color=colour)
        ax.set_xticks(range(len(kinds)), [f"{row['type']}\n(n={row['support']})" for row in rows])
        ax.set_ylim(0, 1.05)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)  # beside: never over a bar


def heat_map(table: dict[str, dict[str, int]], path: Path, rows_label: str, columns_label: str) -> None:
    """Counts of table[row][column] as colours, numbers written in the cells."""
    frequent = sorted(table, key=lambda r: (-sum(table[r].values()), r))[:MAX_CONFUSION_LABELS]
    rows = sorted(frequent, key=lambda r: (r == "O", r))  # alphabetical, O last: the diagonal stays a diagonal
    seen = {c for r in rows for c in table[r]}
    columns = sorted(seen, key=lambda c: (c == "O", c not in rows, rows.index(c) if c in rows else 0, c))
    grid = [[table[r].get(c, 0) for c in columns] for r in rows]
    size = 0.45
    with figure(path, max(4.0, size * len(columns) + 2), max(3.0, size * len(rows) + 1.5)) as fig:
        ax = fig.add_subplot()
        ax.imshow(grid, cmap="Blues", aspect="auto")
        ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel(columns_label)
        ax.set_ylabel(rows_label)
        top = max((v for line in grid for v in line), default=0) or 1
        for y, line in enumerate(grid):
            for x, value in enumerate(line):
                if value:
                    ax.text(x, y, str(value), ha="center", va="center", fontsize=7,
                            color="white" if value > top / 2 else "black")


def category_bars(counts: dict[str, dict[str, int]], path: Path) -> None:
    """One horizontal bar per type, split into the SemEval-2013 categories."""
    kinds = [k for k in counts if k != "ALL"]
    with figure(path, 7.0, max(2.0, 0.45 * len(kinds) + 1.2)) as fig:
        ax = fig.add_subplot()
        left = [0] * len(kinds)
        for category, colour in CATEGORY_COLOURS.items():
            values = [counts[k][category] for k in kinds]
            ax.barh(range(len(kinds)), values, left=left, color=colour, label=category)
            left = [a + b for a, b in zip(left, values)]
        ax.set_yticks(range(len(kinds)), kinds)
        ax.invert_yaxis()
        ax.set_xlabel("spans")
        ax.legend(ncols=6, fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.0), frameon=False)  # above the bars


def curves(train_log: list[dict], evaluations: list[dict], path: Path, formats=("svg", "png")) -> bool:
    """Training loss, learning rate and validation F1 against the optimizer step; False when the run
    logged nothing to draw."""
    panels = [(name, [(r["step"], r[key]) for r in log if key in r and "step" in r])
              for name, key, log in (("training loss", "train/loss", train_log),
                                     ("learning rate", "train/learning_rate", train_log),
                                     ("validation F1", "eval_f1", evaluations))]
    panels = [(name, points) for name, points in panels if points]
    if not panels:
        return False
    with figure(path, 3.2 * len(panels), 2.6, formats) as fig:
        for i, (name, points) in enumerate(panels, 1):
            ax = fig.add_subplot(1, len(panels), i)
            ax.plot(*zip(*points), marker="o" if len(points) < 30 else None, markersize=3)
            ax.set_title(name)
            ax.set_xlabel("step")
    return True
