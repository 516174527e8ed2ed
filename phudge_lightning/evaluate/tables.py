"""What ``phudge evaluate`` prints: a table per benchmark, and a summary of several."""

from __future__ import annotations

# The table's order: the figures, then the counts behind them, then the settings.
HEADLINE = ("n", "pearson", "spearman", "kendall", "r2", "mae", "mse", "accuracy", "accuracy_with_ties",
            "n_with_ties", "ties", "predicted_ties", "no_score", "invalid", "dropped", "tie_margin",
            "ranking_agreement", "ranking_pairs", "rankings", "answers_ranked", "pair_grades",
            "rankings_of_3_or_more", "rankings_in_full_agreement")
# The summary's columns: the headline figure of each kind of set, then how much it leans on length.
SUMMARY = ("n", "pearson", "accuracy", "length_pearson", "accuracy_shorter_preferred", "seconds")


def cell(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "" if value is None else str(value)


def print_table(result: dict, console) -> None:
    from rich.table import Table

    table = Table(title=f"{result['benchmark']}: {result['judge']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    ordered = [k for k in HEADLINE if k in result] + sorted(k for k in result if k not in HEADLINE)
    for key in ordered:
        value = result[key]
        if isinstance(value, dict):  # accuracy_by_group: a row per group
            for name, v in value.items():
                table.add_row(f"{key.removesuffix('_by_group')} ({name})", cell(v))
        else:
            table.add_row(key, cell(value))
    console.print(table)


def print_summary(results: list[dict], console) -> None:
    """One row per benchmark: its headline figures side by side (HHH's subsets after its accuracy)."""
    from rich.table import Table

    columns = [k for k in SUMMARY if any(k in r for r in results)]
    table = Table(title=f"summary: {results[0]['judge']}")
    table.add_column("benchmark")
    for key in columns:
        table.add_column(key, justify="right")
    table.add_column("by group")
    for r in results:
        groups = " ".join(f"{g}={cell(a)}" for g, a in (r.get("accuracy_by_group") or {}).items())
        table.add_row(r["benchmark"], *(cell(r.get(k)) for k in columns), groups)
    console.print(table)
