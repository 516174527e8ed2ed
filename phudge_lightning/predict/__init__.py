"""``phudge predict``: Lightning's predict loop over every device, one shard per rank, merged in input order."""

from phudge_lightning.predict.writer import JudgePredictionWriter

__all__ = ["JudgePredictionWriter"]
