"""``phudge rubrics``: list the rubrics that can be given by name."""

from phudge_lightning.rubrics.show import main

__all__ = ["main"]
