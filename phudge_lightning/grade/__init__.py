"""``phudge grade``: grade a JSON-lines file resumably, in input order."""

from phudge_lightning.grade.command import grade_file, main

__all__ = ["grade_file", "main"]
