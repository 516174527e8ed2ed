"""``phudge evaluate``: a judge (or the length baseline) on a benchmark, with the paper's metrics."""

from phudge_lightning.evaluate.run import main

__all__ = ["main"]
