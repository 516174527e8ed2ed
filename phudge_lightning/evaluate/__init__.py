"""``phudge evaluate``: a judge, an ensemble or the length baseline on benchmarks and on a training
config's validation split, with the paper's metrics."""

from phudge_lightning.evaluate.run import main

__all__ = ["main"]
