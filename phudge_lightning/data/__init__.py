"""``phudge data``: check a dataset (rows, valid, invalid, rubric/reference share, p99 tokens)."""

from phudge_lightning.data.summary import main, summarize

__all__ = ["main", "summarize"]
