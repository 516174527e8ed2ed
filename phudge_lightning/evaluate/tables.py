"""What ``phudge evaluate`` prints: a table per benchmark, and a summary of several."""

from __future__ import annotations

# The table's order: the figures, then the counts behind them, then the settings.
HEADLINE = ("n", "pearson", "spearman", "kendall", "r2", "mae", "mse", "accuracy", "accuracy_with_ties",
            "n_with_ties", "ties", "predicted_ties", "no_score", "invalid", "dropped", "tie_margin",
            "ranking_agreement", "ranking_pairs", "rankings", "answers_ranked", "pair_grades",
            "rankings_of_3_or_more", "rankings_in_full_agreement")
# The summary's columns (header: figure): the headline figure of each kind of set, then how much it
# leans on length.
SUMMARY = {"n": "n", "pearson": "pearson", "accuracy": "accuracy", "length r": "length_pearson",
           "shorter-preferred acc.": "accuracy_shorter_preferred"}


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
    """One row per benchmark, its headline figures side by side; a row per subset (HHH's) after it."""
    from rich.table import Table

    columns = {header: key for header, key in SUMMARY.items() if any(r.get(key) is not None for r in results)}
    table = Table(title=f"summary: {results[0]['judge']}")
    table.add_column("benchmark", no_wrap=True)
    for header in columns:
        table.add_column(header, justify="right")
    for r in results:
        table.add_row(r["benchmark"], *(cell(r.get(key)) for key in columns.values()))
        for group, accuracy in (r.get("accuracy_by_group") or {}).items():
            table.add_row(f"  {group}", *(cell(accuracy) if key == "accuracy" else "" for key in columns.values()))
    console.print(table)
