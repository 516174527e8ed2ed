"""``phudge rank``: rank many answers to each instruction of a JSON-lines file, resumably."""

from phudge_lightning.rank.command import main, rank_file

__all__ = ["main", "rank_file"]
