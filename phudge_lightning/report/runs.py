"""``phudge report``: the validation curves and the final metrics of every run under a folder.

    phudge report --logdir runs/losses

Every folder under ``--logdir`` that holds TensorBoard event files is one run, named by its
path (``ce``, or ``ce/version_1`` when a run name has several versions). The report is a PNG
with one line per run for each plotted metric (``val/loss`` by default: the paper's figures 2
and 3) and a markdown table of each run's last logged value of the paper's metrics, plus its
best (lowest) ``val/loss``. Event files are read with tensorboard's ``EventAccumulator``.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

METRICS = ("val/pearson", "val/spearman", "val/kendall", "val/r2", "val/mae", "val/mse", "val/accuracy", "val/loss")
VERSION = re.compile(r"version_\d+")


@dataclass
class Run:
    name: str
    folder: Path
    scalars: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # tag -> [(step, value)]

    def final(self, tag: str) -> float | None:
        """The value logged last (at the highest step; the later write when a step repeats)."""
        points = self.scalars.get(tag)
        return points[-1][1] if points else None

    def best(self, tag: str, lower: bool = True) -> float | None:
        values = [v for _, v in self.scalars.get(tag, []) if math.isfinite(v)]
        return (min(values) if lower else max(values)) if values else None

    @property
    def last_step(self) -> int | None:
        steps = [points[-1][0] for points in self.scalars.values() if points]
        return max(steps) if steps else None


def event_folders(logdir: Path) -> list[Path]:
    """Folders that directly hold event files, in path order."""
    return sorted({p.parent for p in logdir.rglob("events.out.tfevents.*") if p.is_file()})


def run_names(folders: list[Path], logdir: Path) -> list[str]:
    """Paths relative to ``logdir``; a lone ``version_N`` folder is named by its parent."""
    relative = [f.relative_to(logdir) for f in folders]
    names = []
    for rel in relative:
        parent = rel.parent
        siblings = [r for r in relative if r.parent == parent and VERSION.fullmatch(r.name)]
        lone_version = VERSION.fullmatch(rel.name) and len(siblings) == 1 and str(parent) != "."
        names.append(str(parent if lone_version else rel) if str(rel) != "." else logdir.name)
    return names


def read_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={SCALARS: 0})  # 0: keep every point
    accumulator.Reload()
    scalars = {}
    for tag in accumulator.Tags()[SCALARS]:
        by_step: dict[int, float] = {}
        for event in sorted(accumulator.Scalars(tag), key=lambda e: e.wall_time):
            by_step[event.step] = event.value  # a resumed run rewrites steps: the later one wins
        scalars[tag] = sorted(by_step.items())
    return scalars


def load_runs(logdir: str | Path) -> list[Run]:
    logdir = Path(logdir)
    folders = event_folders(logdir)
    return [Run(name, folder, read_scalars(folder)) for name, folder in zip(run_names(folders, logdir), folders)]


def _cell(value: float | int | None) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.4f}"


def markdown_table(runs: list[Run], metrics: tuple[str, ...] = METRICS) -> str:
    """One row per run: the last value of each metric, the best val/loss and the last step."""
    header = ["run", *metrics, "best val/loss", "step"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        cells = [run.name, *(_cell(run.final(m)) for m in metrics), _cell(run.best("val/loss")), _cell(run.last_step)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(runs: list[Run], path: str | Path, metrics: tuple[str, ...] = ("val/loss",), title: str = "") -> Path:
    """A PNG with one panel per metric and one line per run (against the optimizer step)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(6.5 * len(metrics), 4.5), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for run in runs:
            points = run.scalars.get(metric)
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, marker="o", markersize=3, label=run.name)
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.set_title(f"{title}: {metric}" if title else metric)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="phudge report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", required=True, help="a folder of runs, e.g. runs/losses (TensorBoard event files)")
    parser.add_argument("--png", help="the curves' PNG (default: LOGDIR/report.png)")
    parser.add_argument("--table", help="the markdown table (default: LOGDIR/report.md)")
    parser.add_argument("--plot", nargs="+", default=["val/loss"], metavar="TAG",
                        help="scalar tags to plot, one panel each (default: val/loss)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logdir = Path(args.logdir)
    runs = load_runs(logdir) if logdir.is_dir() else []
    if not runs:
        print(f"phudge report: no TensorBoard event files under {logdir}", file=sys.stderr)
        return 1
    table = markdown_table(runs)
    table_path = Path(args.table or logdir / "report.md")
    table_path.write_text(table)
    png = plot_curves(runs, args.png or logdir / "report.png", tuple(args.plot), title=logdir.name)
    print(table)
    print(f"{len(runs)} runs; table: {table_path}; curves: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
