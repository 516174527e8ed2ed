"""``phudge report``: validation curves of runs as a PNG and their final metrics as a markdown table."""

from phudge_lightning.report.runs import main

__all__ = ["main"]
